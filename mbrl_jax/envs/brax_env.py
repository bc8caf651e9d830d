"""Brax's physics tasks on gymnax's API (an optional extra: ``pip install -e ".[brax]"``).

Brax (``pip install brax``) is pure JAX, so a Brax task steps inside the same
compiled program as the agent, vmaps over seeds and runs on a GPU. The
wrapper gives a Brax environment the interface of every environment of this
library -- ``reset(key, params) -> (obs, state)`` and ``step(key, state,
action, params) -> (obs, state, reward, terminated, truncated, info)`` with
automatic reset and ``info["final_observation"]`` -- so SAC, MBPO, PETS and
the diagnostics take it unchanged.

* Registered names (:data:`BRAX_TASKS`): ``inverted_pendulum-brax``,
  ``inverted_double_pendulum-brax``, ``hopper-brax``, ``halfcheetah-brax``
  (``make("hopper-brax")``), each with Brax's default physics backend
  (``generalized``) and a 1,000-step time limit, as in Brax's training
  scripts. ``make(name, max_steps_in_episode=...)`` changes the limit;
  :class:`BraxEnv` takes any Brax task name and backend.
* Actions are floats in ``[-1, 1]`` (Brax scales them to the actuators'
  ranges). Finite actions outside are clipped. A NaN or inf action ends the
  episode with a NaN reward, so a broken policy shows in the return instead
  of silently pushing with nothing.
* Termination is Brax's ``done`` (the pole fell, the hopper is unhealthy);
  the time limit is a truncation, so agents bootstrap through it.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from mbrl_jax.core.types import Array

#: The Brax tasks registered as ``<task>-brax``.
BRAX_TASKS = ("inverted_pendulum", "inverted_double_pendulum", "hopper", "halfcheetah")
SUFFIX = "-brax"
EXTRA_HINT = 'pip install -e ".[brax]"'


def brax_available() -> bool:
    """Whether the ``brax`` package can be imported (the ``[brax]`` extra)."""
    return importlib.util.find_spec("brax") is not None


def registered_names() -> list[str]:
    """``["inverted_pendulum-brax", ...]``: the names :func:`mbrl_jax.envs.make` takes."""
    return [task + SUFFIX for task in BRAX_TASKS]


@struct.dataclass
class BraxEnvState(environment.EnvState):
    """Brax's own ``State`` (a pytree) and the steps taken in this episode."""

    brax_state: Any
    time: Array


@struct.dataclass
class BraxEnvParams(environment.EnvParams):
    max_steps_in_episode: int = 1000


class BraxEnv(environment.Environment[BraxEnvState, BraxEnvParams]):
    """A Brax task with gymnax's API (see the module docstring).

    Args:
      task: a Brax environment name (``brax.envs.get_environment``), e.g.
        ``"hopper"``.
      backend: Brax's physics pipeline (``"generalized"``, ``"positional"``,
        ``"spring"``; ``None``: the task's default).
      **kwargs: passed to the Brax environment's constructor.

    Raises:
      ValueError: Brax is not installed, or it has no task of that name.
    """

    def __init__(self, task: str, backend: str | None = None, **kwargs):
        if not brax_available():
            raise ValueError(
                f"environment {task + SUFFIX!r} needs Brax, which is not installed: {EXTRA_HINT}"
            )
        from brax import envs as brax_envs

        known = sorted(brax_envs._envs) if hasattr(brax_envs, "_envs") else None
        if known is not None and task not in known:
            raise ValueError(f"unknown Brax task {task!r}; Brax has {', '.join(known)}")
        if backend is not None:
            kwargs["backend"] = backend
        self._task = task
        self._env = brax_envs.get_environment(task, **kwargs)
        self._action_size = int(self._env.action_size)
        self._obs_size = int(self._env.observation_size)

    @property
    def brax_env(self):
        """The wrapped Brax environment."""
        return self._env

    @property
    def name(self) -> str:
        return self._task + SUFFIX

    @property
    def default_params(self) -> BraxEnvParams:
        return BraxEnvParams()

    def step_env(self, key, state, action, params):
        del key
        action = jnp.reshape(jnp.asarray(action, jnp.float32), (self._action_size,))
        finite = jnp.all(jnp.isfinite(action))
        action = jnp.clip(jnp.where(jnp.isfinite(action), action, 0.0), -1.0, 1.0)
        brax_state = _float_leaves(self._env.step(state.brax_state, action))
        obs = jnp.asarray(brax_state.obs, jnp.float32)
        terminated = (brax_state.done > 0.5) | ~finite
        reward = jnp.where(finite, brax_state.reward, jnp.nan)
        next_state = BraxEnvState(brax_state=brax_state, time=state.time + 1)
        return obs, next_state, reward, terminated, {}

    def reset_env(self, key, params):
        brax_state = _float_leaves(self._env.reset(key))
        state = BraxEnvState(brax_state=brax_state, time=jnp.int32(0))
        return jnp.asarray(brax_state.obs, jnp.float32), state

    def get_obs(self, state, params=None, key=None) -> Array:
        return jnp.asarray(state.brax_state.obs, jnp.float32)

    def is_terminated(self, state, params) -> Array:
        return jnp.asarray(state.brax_state.done) > 0.5

    def action_space(self, params=None) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (self._action_size,), jnp.float32)

    def observation_space(self, params) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, (self._obs_size,), jnp.float32)

    def check_action(self, action, params=None) -> None:
        """Raises ``ValueError`` unless a concrete ``action`` is finite with
        ``action_dim`` entries (for the Python API, outside ``jit``)."""
        values = np.asarray(action, dtype=np.float64)
        if values.size != self._action_size or not np.all(np.isfinite(values)):
            raise ValueError(
                f"{self.name}: actions must be {self._action_size} finite numbers, got {action!r}"
            )


def _float_leaves(brax_state):
    """Brax's reward and done as float32 arrays (some tasks return Python
    floats), so reset and stepped states have one structure for gymnax's
    automatic reset."""
    return brax_state.replace(
        reward=jnp.asarray(brax_state.reward, jnp.float32),
        done=jnp.asarray(brax_state.done, jnp.float32),
    )


def make_brax(name: str) -> tuple[BraxEnv, BraxEnvParams]:
    """``(env, params)`` of a registered ``<task>-brax`` name.

    Raises:
      ValueError: not a registered name, or Brax is not installed.
    """
    if name not in registered_names():
        raise ValueError(f"unknown Brax environment {name!r}; registered: {registered_names()}")
    env = BraxEnv(name[: -len(SUFFIX)])
    return env, env.default_params


__all__ = [
    "BRAX_TASKS",
    "BraxEnv",
    "BraxEnvParams",
    "BraxEnvState",
    "brax_available",
    "make_brax",
    "registered_names",
]
