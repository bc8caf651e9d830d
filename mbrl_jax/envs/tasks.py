"""Known reward and termination functions of environments, for planning with learned dynamics.

``reward_fn(obs, action, next_obs) -> [...]`` and ``termination_fn(next_obs) -> [...]``
work on any leading batch shape. A planner may take these instead of learning
reward and termination heads (as PETS does on its benchmark tasks); the
registry (:func:`mbrl_jax.envs.task_functions`) says which environment has
which.
``state_cost_fn(obs) -> [...]``, where given, is a non-negative cost of a state
for MPC to add to the reward, per step or at the end of the horizon (a
terminal cost): zero at the goal, growing with the distance from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp

from mbrl_jax.core.types import Array
from mbrl_jax.envs.continuous_cartpole import cartpole_terminated


class TaskFunctions(NamedTuple):
    """``reward_fn(obs, action, next_obs)``, ``termination_fn(next_obs)`` and
    ``state_cost_fn(obs)``; a ``None`` field is unknown (a model learns it)."""

    reward_fn: Callable[[Array, Array, Array], Array] | None = None
    termination_fn: Callable[[Array], Array] | None = None
    state_cost_fn: Callable[[Array], Array] | None = None


def _alive_reward(obs, action, next_obs):
    return jnp.ones(obs.shape[:-1], jnp.float32)


def _never(next_obs):
    return jnp.zeros(next_obs.shape[:-1], bool)


def _cartpole_state_cost(obs):
    """Cart-pole: the squared cart position plus the squared pole angle, each as a
    fraction of its failure limit (2.4 m, 12 degrees).

    The reward is an "alive" bonus, so every planned rollout that survives
    the horizon ties with every other: a cart drifting towards the end of the
    track, or a pole swinging wide into states the model has not seen, looks
    as good as a centred cart under an upright pole until it is too late. A
    small cost per step breaks the tie towards the centre, which is also
    where the first (random) data lie and the learned model is right.
    """
    return (obs[..., 0] / 2.4) ** 2 + (obs[..., 2] / 0.2095) ** 2


def _pendulum_reward(obs, action, next_obs):
    theta = jnp.arctan2(obs[..., 1], obs[..., 0])
    torque = jnp.clip(action[..., 0], -2.0, 2.0)
    return -(theta**2 + 0.1 * obs[..., 2] ** 2 + 0.001 * torque**2)


def inverted_pendulum_terminated(next_obs: Array) -> Array:
    """``[...]`` bool: Brax's ``inverted_pendulum`` ends when ``|pole angle| > 0.2``
    (``next_obs[..., 1]``; the observation is ``[q (2), qd (2)]``)."""
    return jnp.abs(next_obs[..., 1]) > 0.2


CARTPOLE = TaskFunctions(_alive_reward, cartpole_terminated, _cartpole_state_cost)
PENDULUM = TaskFunctions(_pendulum_reward, _never)
INVERTED_PENDULUM = TaskFunctions(_alive_reward, inverted_pendulum_terminated)
