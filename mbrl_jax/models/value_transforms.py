"""MuZero's invertible value scaling and categorical value/reward supports.

``h(x) = sign(x) (sqrt(|x| + 1) - 1) + eps x`` squashes large returns so that
one network output range fits rewards and values of any scale; ``h_inverse``
is its exact inverse. A scalar is represented on the integer support
``[-support_size, support_size]`` as two-hot probabilities on its neighbours
(:func:`scalar_to_support`), and read back as the expectation
(:func:`support_to_scalar`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mbrl_jax.core.types import Array

EPS = 1e-3


def h(x: Array, eps: float = EPS) -> Array:
    """Value scaling ``sign(x) (sqrt(|x| + 1) - 1) + eps x`` (any shape)."""
    return jnp.sign(x) * (jnp.sqrt(jnp.abs(x) + 1.0) - 1.0) + eps * x


def h_inverse(y: Array, eps: float = EPS) -> Array:
    """Exact inverse of :func:`h` (any shape)."""
    root = (jnp.sqrt(1.0 + 4.0 * eps * (jnp.abs(y) + 1.0 + eps)) - 1.0) / (2.0 * eps)
    return jnp.sign(y) * (root**2 - 1.0)


def scalar_to_support(x: Array, support_size: int) -> Array:
    """``x [...]`` (already scaled) -> two-hot probabilities ``[..., 2 * support_size + 1]``."""
    x = jnp.clip(x, -support_size, support_size)
    low = jnp.floor(x)
    upper_weight = x - low
    index = (low + support_size).astype(jnp.int32)
    size = 2 * support_size + 1
    return (
        jax.nn.one_hot(index, size) * (1.0 - upper_weight)[..., None]
        + jax.nn.one_hot(jnp.minimum(index + 1, size - 1), size) * upper_weight[..., None]
    )


def support_to_scalar(logits: Array, support_size: int) -> Array:
    """Logits ``[..., 2 * support_size + 1]`` -> expected (still scaled) value ``[...]``."""
    support = jnp.arange(-support_size, support_size + 1, dtype=jnp.float32)
    return jnp.sum(jax.nn.softmax(logits, axis=-1) * support, axis=-1)


# ------------------------------------------------------- Dreamer's symlog two-hot bins
def symlog(x: Array) -> Array:
    """``sign(x) log(1 + |x|)`` (any shape): DreamerV3's squashing of targets."""
    return jnp.sign(x) * jnp.log1p(jnp.abs(x))


def symexp(y: Array) -> Array:
    """Exact inverse of :func:`symlog`: ``sign(y) (exp(|y|) - 1)``."""
    return jnp.sign(y) * jnp.expm1(jnp.abs(y))


def symlog_bins(num_bins: int = 255, limit: float = 20.0) -> Array:
    """``[num_bins]`` evenly spaced bin centres on ``[-limit, limit]`` in symlog space."""
    return jnp.linspace(-limit, limit, num_bins, dtype=jnp.float32)


def two_hot(y: Array, bins: Array) -> Array:
    """``y [...]`` (already in the bins' space) -> ``[..., K]`` weights on its two
    neighbouring bins (linear interpolation; clipped to the outer bins)."""
    num_bins = bins.shape[0]
    y = jnp.clip(y, bins[0], bins[-1])
    above = jnp.clip(jnp.searchsorted(bins, y, side="right"), 1, num_bins - 1)
    below = above - 1
    width = bins[above] - bins[below]
    weight_above = jnp.clip((y - bins[below]) / width, 0.0, 1.0)
    return (
        jax.nn.one_hot(below, num_bins) * (1.0 - weight_above)[..., None]
        + jax.nn.one_hot(above, num_bins) * weight_above[..., None]
    )


def two_hot_mean(logits: Array, bins: Array) -> Array:
    """Logits ``[..., K]`` -> the symexp of the expected bin ``[...]`` (a real-valued
    prediction)."""
    return symexp(jnp.sum(jax.nn.softmax(logits, axis=-1) * bins, axis=-1))


def two_hot_loss(logits: Array, target: Array, bins: Array) -> Array:
    """Cross-entropy ``[...]`` of logits ``[..., K]`` against the two-hot of
    ``symlog(target) [...]``."""
    labels = jax.lax.stop_gradient(two_hot(symlog(target), bins))
    return -jnp.sum(labels * jax.nn.log_softmax(logits, axis=-1), axis=-1)
