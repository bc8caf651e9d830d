import jax.numpy as jnp
import numpy as np

from mbrl_jax.models.value_transforms import h, h_inverse, scalar_to_support, support_to_scalar


def test_value_transforms_invert():
    x = jnp.array([-300.0, -1.5, 0.0, 0.3, 1.0, 42.0, 500.0])
    np.testing.assert_allclose(np.asarray(h_inverse(h(x))), np.asarray(x), rtol=1e-4, atol=1e-4)
    y = jnp.array([-2.7, 0.0, 0.4, 3.0, 9.99])
    probs = scalar_to_support(y, 10)
    np.testing.assert_allclose(np.asarray(probs.sum(-1)), 1.0, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(support_to_scalar(jnp.log(probs + 1e-12), 10)), np.asarray(y), atol=1e-4
    )
