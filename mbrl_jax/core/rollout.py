"""Rolling any model out under any policy: one ``lax.scan`` over the horizon.

Every planner that looks ahead (shooting, the rollout evaluator of MCTS) and
every imagination-based agent rolls models out through :func:`rollout`, so a
new model works with all of them as soon as it is a
:class:`~mbrl_jax.core.types.Model`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from mbrl_jax.core.types import Array, Model, PRNGKey, batch_step

#: ``policy(key, states [N, ...], t) -> actions [N, ...]``; ``t`` is the ``[]`` int32 step.
Policy = Callable[[PRNGKey, Any, Array], Array]


class Rollout(NamedTuple):
    """``N`` trajectories of ``H`` steps, time-major.

    Attributes:
      states: ``[H, N, ...]`` state before each step (``None`` unless kept).
      actions: ``[H, N, ...]`` actions taken (``None`` unless kept).
      rewards: ``[H, N]`` model rewards.
      dones: ``[H, N]`` bool: the step terminated (a probability counts as
        termination above 0.5).
      mask: ``[H, N]`` float32: 1 where the step was taken before any
        termination, 0 after it (what follows a termination is not part of
        the episode).
      final_state: ``[N, ...]`` state after the last step.
      final_alive: ``[N]`` float32: 1 if no step terminated.
      discounted_return: ``[N]`` ``sum_t mask_t discount^t rewards_t``.
    """

    states: Any
    actions: Any
    rewards: Array
    dones: Array
    mask: Array
    final_state: Any
    final_alive: Array
    discounted_return: Array


def rollout(
    model: Model,
    policy: Policy,
    params: Any,
    key: PRNGKey,
    start: Any,
    horizon: int,
    discount: float = 1.0,
    keep_trajectory: bool = True,
) -> Rollout:
    """Rolls ``N`` start states out for ``horizon`` steps.

    All ``N`` states advance together through the model's batched step
    (:func:`mbrl_jax.core.types.batch_step`) once per step; the policy sees
    the whole batch. Step ``t`` splits its key into the policy's and the
    model's.

    Args:
      model: any :class:`~mbrl_jax.core.types.Model`.
      policy: ``policy(key, states [N, ...], t) -> actions [N, ...]``.
      params: the model's params.
      key: PRNG key.
      start: pytree of ``[N, ...]`` start states (add a leading axis for one).
      horizon: ``H >= 1`` steps (static).
      discount: discount of :attr:`Rollout.discounted_return`.
      keep_trajectory: also return the ``[H, N, ...]`` states and actions
        (planners that need only returns save the memory).

    Returns:
      :class:`Rollout`.
    """
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"rollout: horizon must be an integer >= 1, got {horizon!r}")
    step = batch_step(model)
    n = jax.tree.leaves(start)[0].shape[0]

    def body(carry, inputs):
        states, alive, total = carry
        step_key, t = inputs
        policy_key, model_key = jax.random.split(step_key)
        actions = policy(policy_key, states, t)
        next_states, reward, done = step(params, model_key, states, actions)
        reward = jnp.asarray(reward, jnp.float32)
        done = jnp.asarray(done) > 0.5
        total = total + alive * (discount**t) * reward
        out = (states, actions) if keep_trajectory else (None, None)
        new_alive = alive * (1.0 - done.astype(jnp.float32))
        return (next_states, new_alive, total), (*out, reward, done, alive)

    init = (start, jnp.ones(n, jnp.float32), jnp.zeros(n, jnp.float32))
    (final, alive, total), (states, actions, rewards, dones, mask) = jax.lax.scan(
        body, init, (jax.random.split(key, horizon), jnp.arange(horizon))
    )
    return Rollout(states, actions, rewards, dones, mask, final, alive, total)
