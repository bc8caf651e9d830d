"""Turning per-step metrics ``reward [T]`` and ``done [T]`` into learning curves.

All functions are pure and take one run's arrays (``vmap`` over seeds);
``max_episodes`` fixes the output shape.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mbrl_jax.types import Array


def _episode_index(done: Array) -> Array:
    done = jnp.asarray(done, jnp.int32)
    return jnp.cumsum(done) - done


def episode_lengths(done: Array, max_episodes: int) -> tuple[Array, Array]:
    """Steps per completed episode.

    Args:
      done: ``[T]`` bool, True at the last step of each episode.
      max_episodes: static size of the output.

    Returns:
      ``(lengths [max_episodes] int32, valid [max_episodes] bool)``; entries past
      the number of completed episodes are 0 and not valid.
    """
    index = _episode_index(done)
    lengths = jax.ops.segment_sum(jnp.ones_like(index), index, num_segments=max_episodes)
    valid = jnp.arange(max_episodes) < jnp.sum(jnp.asarray(done, jnp.int32))
    return jnp.where(valid, lengths, 0).astype(jnp.int32), valid


def episode_returns(reward: Array, done: Array, max_episodes: int) -> tuple[Array, Array]:
    """Undiscounted return per completed episode; same layout as :func:`episode_lengths`."""
    index = _episode_index(done)
    returns = jax.ops.segment_sum(
        jnp.asarray(reward, jnp.float32), index, num_segments=max_episodes
    )
    valid = jnp.arange(max_episodes) < jnp.sum(jnp.asarray(done, jnp.int32))
    return jnp.where(valid, returns, 0.0), valid


def cumulative_reward(reward: Array) -> Array:
    """``[T]`` running sum of rewards."""
    return jnp.cumsum(jnp.asarray(reward, jnp.float32), axis=-1)


def first_step_where(condition: Array) -> Array:
    """``[]`` int32 first index where ``condition [T]`` holds, or ``T`` if never."""
    condition = jnp.asarray(condition, bool)
    return jnp.where(jnp.any(condition), jnp.argmax(condition), condition.shape[-1]).astype(
        jnp.int32
    )


def updates_until_path_within(
    greedy_path_length: Array, q_updates: Array, interval: int, max_length: float
) -> Array:
    """Q-table updates made until the greedy path first reaches the goal within ``max_length``.

    Args:
      greedy_path_length: ``[B, T // interval]`` path lengths recorded every
        ``interval`` steps (``-1``: goal not reached), as in ``TrainOutput``.
      q_updates: ``[B, T]`` updates per step.
      interval: the ``greedy_eval_interval`` the run used.
      max_length: largest path length that counts.

    Returns:
      ``[B]`` float32 update counts, ``inf`` for runs that never got there.
    """
    path = jnp.asarray(greedy_path_length)
    good = (path > 0) & (path <= max_length)
    cumulative = jnp.cumsum(jnp.asarray(q_updates, jnp.float32), axis=1)[
        :, interval - 1 :: interval
    ]
    reached = jnp.take_along_axis(cumulative, jnp.argmax(good, axis=1)[:, None], axis=1)[:, 0]
    return jnp.where(jnp.any(good, axis=1), reached, jnp.inf)
