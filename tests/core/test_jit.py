import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mbrl_jax
from mbrl_jax.models.ensemble import silu


def test_compiler_options_per_backend():
    assert mbrl_jax.compiler_options("cpu") == {"xla_cpu_prefer_vector_width": 512}
    assert mbrl_jax.compiler_options("gpu") == {}
    assert mbrl_jax.compiler_options("tpu") == {}
    # A fresh dict each call: callers may change it.
    mbrl_jax.compiler_options("cpu")["xla_cpu_prefer_vector_width"] = 256
    assert mbrl_jax.compiler_options("cpu") == {"xla_cpu_prefer_vector_width": 512}


def test_jit_matches_jax_jit_and_does_not_recompile():
    def f(x, y):
        return jax.nn.silu(x @ y).sum(0)

    x = jax.random.normal(jax.random.key(0), (33, 17))
    y = jax.random.normal(jax.random.key(1), (17, 9))
    jitted = mbrl_jax.jit(f)
    np.testing.assert_allclose(jitted(x, y), jax.jit(f)(x, y), rtol=1e-5, atol=1e-5)
    jitted(x + 1.0, y)
    assert jitted._cache_size() == 1
    # jax.jit's own arguments pass through.
    g = mbrl_jax.jit(lambda x, n: x * n, static_argnums=1)
    assert float(g(jnp.float32(2.0), 3)) == 6.0


def test_callers_compiler_options_take_precedence():
    # An invalid value reaches XLA (and fails) only if the caller's option
    # replaced the library's valid one.
    bad = mbrl_jax.jit(lambda x: x * 2, compiler_options={"xla_cpu_prefer_vector_width": "wide"})
    with pytest.raises(Exception, match="xla_cpu_prefer_vector_width"):
        bad(jnp.ones(3))
    good = mbrl_jax.jit(lambda x: x * 2, compiler_options={"xla_cpu_prefer_vector_width": 256})
    assert float(good(jnp.ones(3)).sum()) == 6.0


def test_silu_is_jax_silu():
    x = jnp.linspace(-40.0, 40.0, 100_001)
    np.testing.assert_allclose(silu(x), jax.nn.silu(x), rtol=0, atol=4e-6)
    small = jnp.linspace(-3.0, 3.0, 10_001)
    np.testing.assert_allclose(silu(small), jax.nn.silu(small), rtol=2e-6, atol=1e-7)
    grad = jax.vmap(jax.grad(silu))(x)
    np.testing.assert_allclose(grad, jax.vmap(jax.grad(jax.nn.silu))(x), rtol=0, atol=4e-6)
