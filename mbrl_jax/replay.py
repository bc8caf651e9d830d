"""A fixed-capacity replay buffer held as a pytree (add and sample are jittable)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from mbrl_jax.types import Array, PRNGKey


@struct.dataclass
class ReplayBuffer:
    """Ring buffer of transitions.

    Attributes:
      data: pytree whose leaves are ``[capacity, ...]``.
      size: ``[]`` int32 number of valid entries (``<= capacity``).
      position: ``[]`` int32 index the next entry is written to.
    """

    data: Any
    size: Array
    position: Array

    @property
    def capacity(self) -> int:
        return jax.tree.leaves(self.data)[0].shape[0]


def buffer_init(example: Any, capacity: int) -> ReplayBuffer:
    """An empty buffer for items shaped like ``example`` (one unbatched item)."""
    if capacity < 1:
        raise ValueError(f"capacity must be >= 1, got {capacity}")
    data = jax.tree.map(
        lambda x: jnp.zeros((capacity, *jnp.shape(x)), jnp.asarray(x).dtype), example
    )
    return ReplayBuffer(data=data, size=jnp.int32(0), position=jnp.int32(0))


def buffer_add(buffer: ReplayBuffer, batch: Any, mask: Array | None = None) -> ReplayBuffer:
    """Appends a batch ``[B, ...]``; entries where ``mask`` is False are skipped.

    Valid entries are written contiguously in order, overwriting the oldest
    once the buffer is full.
    """
    batch_size = jax.tree.leaves(batch)[0].shape[0]
    mask = jnp.ones((batch_size,), bool) if mask is None else jnp.asarray(mask, bool)
    offsets = jnp.cumsum(mask) - 1
    capacity = buffer.capacity
    index = jnp.where(mask, (buffer.position + offsets) % capacity, capacity)  # capacity: dropped
    data = jax.tree.map(
        lambda store, new: store.at[index].set(new.astype(store.dtype), mode="drop"),
        buffer.data,
        batch,
    )
    added = jnp.sum(mask).astype(jnp.int32)
    return ReplayBuffer(
        data=data,
        size=jnp.minimum(buffer.size + added, capacity),
        position=(buffer.position + added) % capacity,
    )


def buffer_sample(buffer: ReplayBuffer, key: PRNGKey, batch_size: int) -> Any:
    """Uniformly samples ``batch_size`` valid entries (with replacement)."""
    index = jax.random.randint(key, (batch_size,), 0, jnp.maximum(buffer.size, 1))
    return jax.tree.map(lambda x: x[index], buffer.data)
