import jax.numpy as jnp
import numpy as np

from mbrl_jax.core.random import hashed_index


def test_hashed_index_is_uniform():
    counts = np.bincount(
        np.asarray(hashed_index(jnp.uint32(12345), jnp.arange(70_000, dtype=jnp.uint32), 7)),
        minlength=7,
    )
    np.testing.assert_allclose(counts / 70_000, 1 / 7, atol=0.006)
