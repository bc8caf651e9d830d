"""Cheap counter-based random words derived from one ``jax.random`` word.

On a CPU, Threefry costs several nanoseconds per 32-bit word, more than a
tabular update. Hot loops therefore draw one word per step from
``jax.random`` (so every key is still consumed exactly once) and expand it
with ``lowbias32``, a 32-bit integer hash with low bias, applied to
``seed + counter * golden``: a handful of integer operations per word.
"""

from __future__ import annotations

import jax.numpy as jnp

from mbrl_jax.core.types import Array

_GOLDEN = 0x9E3779B9  # 2^32 / golden ratio


def lowbias32(x: Array) -> Array:
    """A 32-bit integer hash with low bias (uint32 in, uint32 out)."""
    x = jnp.asarray(x, jnp.uint32)
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def hashed_bits(seed: Array, counter: Array) -> Array:
    """uint32 words from a uint32 ``seed`` and a ``counter`` (any shape)."""
    seed = jnp.asarray(seed, jnp.uint32)
    return lowbias32(seed + jnp.asarray(counter, jnp.uint32) * jnp.uint32(_GOLDEN))


def hashed_uniform(seed: Array, counter: Array) -> Array:
    """Uniform float32 in ``[0, 1)`` from a seed and a counter."""
    return (hashed_bits(seed, counter) >> 8).astype(jnp.float32) * jnp.float32(2.0**-24)


def hashed_index(seed: Array, counter: Array, size: Array) -> Array:
    """Uniform int32 index in ``[0, size)`` (``size >= 1``) from a seed and a counter."""
    u = hashed_uniform(seed, counter)
    return jnp.minimum((u * size).astype(jnp.int32), jnp.maximum(size, 1) - 1)
