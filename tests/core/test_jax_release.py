"""Guards against JAX releases that compute wrong results on CPU.

jax/jaxlib 0.10.2 (jax-ml/jax#39103) returns wrong numbers under ``jit`` for a
vmapped matrix-vector product followed by a reduction, the shape of an
ensemble's forward pass; ``pyproject.toml`` excludes it. This test runs the
pattern at the sizes that failed, in both precisions, with ``jax.jit`` and
with ``mbrl_jax.jit``, so a future release with the same fault fails CI
instead of our users' results. It runs in a subprocess because float64 needs
``JAX_ENABLE_X64``, which would change the rest of the suite.
"""

import os
import subprocess
import sys

SCRIPT = r"""
import jax
import jax.numpy as jnp
import mbrl_jax

def check(dtype, n):
    i = jnp.arange(n, dtype=dtype)
    x = jnp.stack((i, jnp.zeros_like(i), jnp.zeros_like(i)), axis=1)
    matrix = jnp.eye(3, dtype=dtype)

    def f(x):
        return jax.vmap(lambda row: jnp.sum((matrix @ row) ** 2))(x)

    exact = float(n - 1) ** 2
    eager = float(f(x)[-1])
    plain = float(jax.jit(f)(x)[-1])
    ours = float(mbrl_jax.jit(f)(x)[-1])
    assert eager == plain == ours == exact, (dtype.__name__, n, eager, plain, ours, exact)

check(jnp.float64, 16_385)
check(jnp.float32, 32_769)
check(jnp.float32, 4_097)
print("ok", jax.__version__)
"""


def test_vmapped_matvec_reduction_is_exact_under_jit():
    env = dict(os.environ, JAX_ENABLE_X64="1", JAX_PLATFORMS="cpu")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok")


def test_pyproject_excludes_the_broken_release():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "pyproject.toml")) as f:
        text = f.read()
    assert '"jax>=0.4.30,!=0.10.2"' in text and '"jaxlib>=0.4.30,!=0.10.2"' in text
