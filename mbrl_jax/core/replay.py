"""Replay buffers held as pytrees: ``add`` and ``sample`` are pure and jittable.

* :class:`ReplayBuffer`: a flat ring buffer of items (usually
  :class:`~mbrl_jax.core.types.Transition` items), sampled uniformly.
* :class:`TrajectoryBuffer`: time-major steps of ``N`` parallel environments
  (``[capacity, N, ...]``), sampled as windows of consecutive steps of one
  environment (MuZero's unrolls, Dreamer's sequences).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from mbrl_jax.core.types import Array, PRNGKey


def _check_capacity(capacity: int) -> None:
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
        raise ValueError(f"capacity must be an integer >= 1, got {capacity!r}")


# ------------------------------------------------------------------------- flat buffer
@struct.dataclass
class ReplayBuffer:
    """Ring buffer of items.

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
    _check_capacity(capacity)
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


# ------------------------------------------------------------------- trajectory buffer
@struct.dataclass
class TrajectoryBuffer:
    """Time-major steps of ``N`` environments.

    Attributes:
      data: pytree (usually a :class:`~mbrl_jax.core.types.Transition`) whose
        leaves are ``[capacity, N, ...]``; row ``t`` holds step ``t`` of every
        environment.
      position: ``[]`` int32 next row to write.
      size: ``[]`` int32 rows written (``<= capacity``).
    """

    data: Any
    position: Array
    size: Array

    @property
    def capacity(self) -> int:
        return jax.tree.leaves(self.data)[0].shape[0]

    @property
    def num_envs(self) -> int:
        return jax.tree.leaves(self.data)[0].shape[1]


def trajectory_buffer_init(example: Any, capacity: int, num_envs: int) -> TrajectoryBuffer:
    """An empty buffer of ``capacity`` rows for steps shaped like ``example`` (one env)."""
    _check_capacity(capacity)
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
    data = jax.tree.map(
        lambda x: jnp.zeros((capacity, num_envs, *jnp.shape(x)), jnp.asarray(x).dtype), example
    )
    return TrajectoryBuffer(data=data, position=jnp.int32(0), size=jnp.int32(0))


def trajectory_buffer_add(buffer: TrajectoryBuffer, steps: Any) -> TrajectoryBuffer:
    """Writes ``[T, N, ...]`` steps (the buffer's pytree structure) at the write position."""
    t = jax.tree.leaves(steps)[0].shape[0]
    rows = (buffer.position + jnp.arange(t)) % buffer.capacity
    data = jax.tree.map(
        lambda store, new: store.at[rows].set(new.astype(store.dtype)), buffer.data, steps
    )
    return TrajectoryBuffer(
        data=data,
        position=(buffer.position + t) % buffer.capacity,
        size=jnp.minimum(buffer.size + t, buffer.capacity),
    )


def trajectory_buffer_sample(
    buffer: TrajectoryBuffer, key: PRNGKey, batch_size: int, length: int, done=None
) -> tuple[Any, Array]:
    """Samples ``batch_size`` windows of ``length`` consecutive steps of one environment.

    Windows never cross the write position (the oldest row follows the newest).

    Args:
      buffer: the steps.
      key: PRNG key.
      batch_size: ``B`` windows (static).
      length: ``L`` steps per window (static).
      done: ``done(window) -> [B, L]`` bool, the steps that end an episode;
        default ``window.done`` (a :class:`Transition`'s field).

    Returns:
      ``(window, valid)``: the pytree with leaves ``[B, L, ...]`` and ``valid
      [B, L]`` bool, false from the step after an episode's end on.
    """
    time_key, env_key = jax.random.split(key)
    oldest = jnp.where(buffer.size < buffer.capacity, 0, buffer.position)
    start = jax.random.randint(time_key, (batch_size,), 0, jnp.maximum(buffer.size - length + 1, 1))
    envs = jax.random.randint(env_key, (batch_size,), 0, buffer.num_envs)
    logical = jnp.minimum(start[:, None] + jnp.arange(length), buffer.size - 1)
    rows = (oldest + logical) % buffer.capacity
    window = jax.tree.map(lambda x: x[rows, envs[:, None]], buffer.data)
    ends = (done(window) if done is not None else window.done).astype(jnp.int32)
    valid = (jnp.cumsum(ends, axis=1) - ends) == 0
    return window, valid
