r"""Returns and episode statistics, one implementation each.

Time-major functions (``[T, ...]``, any trailing batch shape):

* :func:`discounted_returns` -- ``G_t = r_t + g_t G_{t+1}`` bootstrapped at the end;
* :func:`lambda_returns` -- TD(lambda) returns (Dreamer's imagination targets);
* :func:`n_step_targets` / :func:`n_step_bootstrap` -- n-step targets with a
  value bootstrap (AlphaZero; MuZero's reanalysed targets);
* :func:`completed_returns` -- returns of the episodes that end inside a stretch.

One-run functions (``[T]``, ``vmap`` over seeds): :func:`episode_lengths`,
:func:`episode_returns`, :func:`cumulative_reward`, :func:`first_step_where`,
and :func:`updates_until_path_within` over a batch of runs.

All loops are ``lax.scan``\ s: backward over time for the recursive returns,
over the bootstrap depth for the n-step ones.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mbrl_jax.core.types import Array


def discounted_returns(rewards: Array, discounts: Array, bootstrap: Array) -> Array:
    """``G_t = r_t + discounts_t * G_{t+1}``, with ``G_T = bootstrap``.

    Args:
      rewards: ``[T, ...]``.
      discounts: ``[T, ...]`` discount of each step (``gamma * (1 - done_t)``).
      bootstrap: ``[...]`` value of the state after the last step.

    Returns:
      ``[T, ...]`` returns.
    """

    def body(g_next, inputs):
        r_t, d_t = inputs
        g_t = r_t + d_t * g_next
        return g_t, g_t

    _, returns = jax.lax.scan(
        body, jnp.asarray(bootstrap, jnp.float32), (rewards, discounts), reverse=True
    )
    return returns


def lambda_returns(
    rewards: Array, discounts: Array, values: Array, bootstrap: Array, lambda_: float
) -> Array:
    """TD(lambda) returns ``G_t = r_t + d_t ((1 - lambda) v_{t+1} + lambda G_{t+1})``.

    Args:
      rewards: ``[T, ...]`` reward of step ``t``.
      discounts: ``[T, ...]`` discount of step ``t`` (``gamma * continuation``).
      values: ``[T, ...]`` value of the state after step ``t`` (``v_{t+1}``).
      bootstrap: ``[...]`` ``G_T``: usually the value of the last state.
      lambda_: in ``[0, 1]``; 0 gives one-step TD targets, 1 discounted returns.

    Returns:
      ``[T, ...]`` returns.
    """
    if not 0.0 <= lambda_ <= 1.0:
        raise ValueError(f"lambda_returns: lambda_ must be in [0, 1], got {lambda_}")

    def body(g_next, inputs):
        r_t, d_t, v_next = inputs
        g_t = r_t + d_t * ((1.0 - lambda_) * v_next + lambda_ * g_next)
        return g_t, g_t

    _, returns = jax.lax.scan(
        body, jnp.asarray(bootstrap, jnp.float32), (rewards, discounts, values), reverse=True
    )
    return returns


def n_step_targets(
    rewards: Array,
    terminated: Array,
    truncated: Array,
    values: Array,
    last_value: Array,
    truncated_value: Array,
    discount: float,
    n: int,
) -> Array:
    """n-step bootstrapped returns along a batch of trajectories, time-major.

    ``G_t = r_t + g r_{t+1} + ... + g^{m-1} r_{t+m-1} + g^m v_{t+m}`` with
    ``m = min(n, steps left in the episode and in the data)``. Past a
    termination nothing is added; at a time-limit truncation the value of the
    final observation (``truncated_value``) is the bootstrap, not zero.

    Args:
      rewards, terminated, truncated: ``[T, ...]``.
      values: ``[T, ...]`` value estimates of the states ``s_t``.
      last_value: ``[...]`` value of the state after the last step.
      truncated_value: ``[T, ...]`` value of the final observation of step ``t``
        (read only where ``truncated``).
      discount: ``g``.
      n: steps before bootstrapping, ``>= 1`` (``n >= T`` gives Monte Carlo
        returns bootstrapped only at the end of the data).

    Returns:
      ``[T, ...]`` targets.
    """
    if n < 1:
        raise ValueError(f"n_step_targets: n must be >= 1, got {n}")
    terminated = terminated.astype(jnp.float32)
    truncated = truncated.astype(jnp.float32) * (1.0 - terminated)
    next_values = jnp.concatenate([values[1:], last_value[None]], axis=0)
    next_values = jnp.where(truncated > 0, truncated_value, next_values) * (1.0 - terminated)
    one_step = rewards + discount * next_values
    stop = (terminated + truncated) > 0
    stop = stop.at[-1].set(True)

    def extend(targets, _):
        # One more step of reward before the bootstrap, wherever the episode goes on.
        shifted = jnp.concatenate([targets[1:], jnp.zeros_like(targets[:1])], axis=0)
        return jnp.where(stop, one_step, rewards + discount * shifted), None

    targets, _ = jax.lax.scan(extend, one_step, None, length=min(n, rewards.shape[0]) - 1)
    return targets


def n_step_bootstrap(
    rewards: Array,
    terminated: Array,
    truncated: Array,
    discount: float,
    n: int,
) -> tuple[Array, Array, Array]:
    """The parts of :func:`n_step_targets` that do not depend on a value function.

    ``G_t = partial_t + boot_discount_t * v(o)`` where ``o`` is the observation
    after step ``boot_index_t`` (its final observation, before any auto-reset),
    so a learner can recompute targets later with a newer value function
    (MuZero's "reanalyse" of values).

    Args:
      rewards, terminated, truncated: ``[T, N]`` time-major.
      discount: ``g``.
      n: steps before bootstrapping, ``>= 1``.

    Returns:
      ``(partial [T, N]`` discounted rewards of the ``m`` steps,
      ``boot_discount [T, N]`` ``g^m``, zero when the episode terminated within
      them, ``boot_index [T, N]`` int32 step ``t + m - 1`` whose final
      observation is the bootstrap state).
    """
    if n < 1:
        raise ValueError(f"n_step_bootstrap: n must be >= 1, got {n}")
    term = terminated.astype(jnp.float32)
    stop = terminated | truncated
    stop = stop.at[-1].set(True)
    one_partial = rewards.astype(jnp.float32)
    one_discount = discount * (1.0 - term)
    one_index = jnp.broadcast_to(
        jnp.arange(rewards.shape[0]).reshape(-1, *([1] * (rewards.ndim - 1))), rewards.shape
    ).astype(jnp.int32)
    partial, disc, index = one_partial, one_discount, one_index

    def shift(x):
        return jnp.concatenate([x[1:], jnp.zeros_like(x[:1])], axis=0)

    def extend(carry, _):
        partial, disc, index = carry
        partial = jnp.where(stop, one_partial, one_partial + discount * shift(partial))
        disc = jnp.where(stop, one_discount, discount * shift(disc))
        index = jnp.where(stop, one_index, shift(index))
        return (partial, disc, index), None

    (partial, disc, index), _ = jax.lax.scan(
        extend, (partial, disc, index), None, length=min(n, rewards.shape[0]) - 1
    )
    return partial, disc, index


def completed_returns(rewards: Array, done: Array, running: Array) -> tuple[Array, Array, Array]:
    """Episode returns completed along ``[T, N]`` steps.

    Args:
      rewards, done: ``[T, N]``.
      running: ``[N]`` return accumulated before the first step.

    Returns:
      ``(returns [T, N]`` (the finished episode's return where ``done``, else 0),
      ``mean_return []`` mean of the episodes finished (NaN if none),
      ``running [N]`` carried to the next call).
    """

    def body(acc, inputs):
        r, d = inputs
        acc = acc + r
        return jnp.where(d, 0.0, acc), jnp.where(d, acc, 0.0)

    running, returns = jax.lax.scan(body, running, (rewards, done))
    count = done.sum()
    mean = jnp.where(count > 0, returns.sum() / jnp.maximum(count, 1), jnp.nan)
    return returns, mean, running


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
