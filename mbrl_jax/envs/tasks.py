"""Known reward and termination functions of environments, for planning with learned dynamics.

``reward_fn(obs, action, next_obs) -> [...]`` and ``termination_fn(next_obs) -> [...]``
work on any leading batch shape. A planner may take these instead of learning
reward and termination heads (as PETS does on its benchmark tasks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp

from mbrl_jax.envs.continuous_cartpole import cartpole_terminated
from mbrl_jax.types import Array


class TaskFunctions(NamedTuple):
    """``reward_fn(obs, action, next_obs)`` and ``termination_fn(next_obs)``."""

    reward_fn: Callable[[Array, Array, Array], Array]
    termination_fn: Callable[[Array], Array]


def _alive_reward(obs, action, next_obs):
    return jnp.ones(obs.shape[:-1], jnp.float32)


def _never(next_obs):
    return jnp.zeros(next_obs.shape[:-1], bool)


def _pendulum_reward(obs, action, next_obs):
    theta = jnp.arctan2(obs[..., 1], obs[..., 0])
    torque = jnp.clip(action[..., 0], -2.0, 2.0)
    return -(theta**2 + 0.1 * obs[..., 2] ** 2 + 0.001 * torque**2)


_TASKS = {
    "ContinuousCartPole": TaskFunctions(_alive_reward, cartpole_terminated),
    "CartPole-v1": TaskFunctions(_alive_reward, cartpole_terminated),
    "Pendulum-v1": TaskFunctions(_pendulum_reward, _never),
}


def task_functions(name: str) -> TaskFunctions | None:
    """The known functions of an environment, or ``None`` if there are none."""
    return _TASKS.get(name)
