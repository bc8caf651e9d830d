"""Bootstrapped value targets and episode bookkeeping shared by the search agents."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mbrl_jax.types import Array


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
    targets = one_step
    for _ in range(min(n, rewards.shape[0]) - 1):
        shifted = jnp.concatenate([targets[1:], jnp.zeros_like(targets[:1])], axis=0)
        targets = jnp.where(stop, one_step, rewards + discount * shifted)
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

    for _ in range(min(n, rewards.shape[0]) - 1):
        partial = jnp.where(stop, one_partial, one_partial + discount * shift(partial))
        disc = jnp.where(stop, one_discount, discount * shift(disc))
        index = jnp.where(stop, one_index, shift(index))
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


def evaluate_episodes(act, env, env_params, params, key, num_envs: int, num_steps: int) -> Array:
    """Returns ``[num_envs]`` of the first episode of each of ``num_envs`` environments.

    ``act(params, key, obs [N, ...], states [N]) -> actions [N]``; each
    environment runs ``num_steps`` steps (``lax.scan``) and its return counts
    rewards until its first episode ends.
    """
    reset_key, loop_key = jax.random.split(key)
    obs, states = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(reset_key, num_envs), env_params
    )

    def body(carry, step_key):
        obs, states, alive, total = carry
        act_key, env_key = jax.random.split(step_key)
        actions = act(params, act_key, obs, states)
        obs, states, reward, terminated, truncated, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(env_key, num_envs), states, actions, env_params
        )
        total = total + alive * reward
        alive = alive * (1.0 - (terminated | truncated).astype(jnp.float32))
        return (obs, states, alive, total), None

    init = (obs, states, jnp.ones(num_envs), jnp.zeros(num_envs))
    (_, _, _, total), _ = jax.lax.scan(body, init, jax.random.split(loop_key, num_steps))
    return total
