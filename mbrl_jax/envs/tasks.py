"""Known reward and termination functions of environments, for planning with learned dynamics.

``reward_fn(obs, action, next_obs) -> [...]`` and ``termination_fn(next_obs) -> [...]``
work on any leading batch shape. A planner may take these instead of learning
reward and termination heads (as PETS does on its benchmark tasks).
``terminal_value_fn(obs) -> [...]``, where given, is a terminal cost for MPC:
an estimate of the value beyond the planning horizon.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp

from mbrl_jax.envs.continuous_cartpole import cartpole_terminated
from mbrl_jax.types import Array


class TaskFunctions(NamedTuple):
    """``reward_fn(obs, action, next_obs)``, ``termination_fn(next_obs)`` and an
    optional ``terminal_value_fn(obs)``."""

    reward_fn: Callable[[Array, Array, Array], Array]
    termination_fn: Callable[[Array], Array]
    terminal_value_fn: Callable[[Array], Array] | None = None


def _alive_reward(obs, action, next_obs):
    return jnp.ones(obs.shape[:-1], jnp.float32)


def _never(next_obs):
    return jnp.zeros(next_obs.shape[:-1], bool)


def _cartpole_terminal_value(obs):
    """Cart-pole: minus 20 times the squared distances of cart and pole, as fractions of
    the failure limits (2.4 m, 12 degrees), at the end of the planning horizon.

    With an "alive" reward, every rollout that survives the horizon ties; a
    cart drifting towards the end of the track looks as good as a centred one
    until the end is within the horizon, when it is too late to stop. Run with
    the true model, iCEM (population 100, horizon 15) keeps the pole up for
    200 steps in 6 of 8 runs without this term and in 8 of 8 with it.
    """
    return -20.0 * ((obs[..., 0] / 2.4) ** 2 + (obs[..., 2] / 0.2095) ** 2)


def _pendulum_reward(obs, action, next_obs):
    theta = jnp.arctan2(obs[..., 1], obs[..., 0])
    torque = jnp.clip(action[..., 0], -2.0, 2.0)
    return -(theta**2 + 0.1 * obs[..., 2] ** 2 + 0.001 * torque**2)


_TASKS = {
    "ContinuousCartPole": TaskFunctions(
        _alive_reward, cartpole_terminated, _cartpole_terminal_value
    ),
    "CartPole-v1": TaskFunctions(_alive_reward, cartpole_terminated, _cartpole_terminal_value),
    "Pendulum-v1": TaskFunctions(_pendulum_reward, _never),
}


def task_functions(name: str) -> TaskFunctions | None:
    """The known functions of an environment, or ``None`` if there are none."""
    return _TASKS.get(name)
