"""DeepMind Control Suite tasks (MuJoCo Playground) on gymnax's API.

An optional dependency: ``pip install playground`` (import ``mujoco_playground``).
The DM Control XMLs ship inside the package, so nothing downloads at run time.
Playground's default physics backend for these tasks is ``impl="warp"``
(NVIDIA Warp kernels called through an FFI, ~70 steps/s for one env on CPU);
this wrapper forces ``impl="jax"`` (MJX in pure JAX: jit, vmap and grad work,
~67k steps/s single env, ~600k steps/s for 256 vmapped envs on one CPU core).

* Registered names: ``cartpole_swingup-dmc``, ``pendulum_swingup-dmc``,
  ``cheetah_run-dmc`` (Playground's ``CartpoleSwingup``, ``PendulumSwingup``,
  ``CheetahRun``). :class:`DMCEnv` takes any of them or any Playground
  DM Control Suite name.
* Actions are floats in ``[-1, 1]``. Finite actions outside are clipped; a NaN
  or inf action ends the episode with a NaN reward (as the Brax wrapper).
* Playground's ``done`` (only ever set for NaN physics in these tasks) is the
  termination; Playground does not signal its 1,000-step limit in ``done``,
  so the limit is this wrapper's ``max_steps_in_episode`` and is a truncation.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from mbrl_jax.core.types import Array

#: Registered ``<task>-dmc`` names and their Playground names.
DMC_TASKS = {
    "cartpole_swingup": "CartpoleSwingup",
    "pendulum_swingup": "PendulumSwingup",
    "cheetah_run": "CheetahRun",
}
SUFFIX = "-dmc"
EXTRA_HINT = 'pip install -e ".[dmc]"'


def dmc_available() -> bool:
    """Whether ``mujoco_playground`` can be imported (the ``[dmc]`` extra)."""
    return importlib.util.find_spec("mujoco_playground") is not None


def registered_names() -> list[str]:
    """``["cartpole_swingup-dmc", ...]``."""
    return [task + SUFFIX for task in DMC_TASKS]


@struct.dataclass
class DMCEnvState(environment.EnvState):
    """Playground's ``State`` (a pytree) and the steps taken in this episode."""

    pg_state: Any
    time: Array


@struct.dataclass
class DMCEnvParams(environment.EnvParams):
    max_steps_in_episode: int = 1000


class DMCEnv(environment.Environment[DMCEnvState, DMCEnvParams]):
    """A DM Control Suite task from MuJoCo Playground with gymnax's API.

    Args:
      name: ``"cartpole_swingup-dmc"``, ``"cartpole_swingup"`` or a Playground
        name such as ``"CartpoleSwingup"``.
      impl: MJX backend; ``"jax"`` (default, pure JAX) or ``"warp"``.
      **config_overrides: more Playground config overrides.

    Raises:
      ValueError: Playground is not installed, or it has no task of that name.
    """

    def __init__(self, name: str, impl: str = "jax", **config_overrides):
        task = name[: -len(SUFFIX)] if name.endswith(SUFFIX) else name
        pg_name = DMC_TASKS.get(task, task)
        if not dmc_available():
            raise ValueError(
                f"environment {task + SUFFIX!r} needs MuJoCo Playground, which is not "
                f"installed: {EXTRA_HINT}"
            )
        from mujoco_playground import registry

        known = list(registry.dm_control_suite.ALL_ENVS)
        if pg_name not in known:
            raise ValueError(f"unknown DM Control task {name!r}; Playground has {', '.join(known)}")
        if task == pg_name:  # a Playground name: derive cartpole_swingup style
            inverse = {v: k for k, v in DMC_TASKS.items()}
            task = inverse.get(pg_name, pg_name)
        self._task = task
        self._pg_name = pg_name
        overrides = {"impl": impl, **config_overrides}
        self._env = registry.load(pg_name, config_overrides=overrides)
        self._action_size = int(self._env.action_size)
        obs_size = self._env.observation_size
        self._obs_size = int(obs_size if np.ndim(obs_size) == 0 else np.prod(obs_size))

    @property
    def playground_env(self):
        """The wrapped Playground environment."""
        return self._env

    @property
    def name(self) -> str:
        return self._task + SUFFIX

    @property
    def default_params(self) -> DMCEnvParams:
        return DMCEnvParams()

    def step_env(self, key, state, action, params):
        del key  # Playground keeps its own key in state.info["rng"]
        action = jnp.reshape(jnp.asarray(action, jnp.float32), (self._action_size,))
        finite = jnp.all(jnp.isfinite(action))
        action = jnp.clip(jnp.where(jnp.isfinite(action), action, 0.0), -1.0, 1.0)
        pg_state = _float_leaves(self._env.step(state.pg_state, action))
        obs = jnp.asarray(pg_state.obs, jnp.float32)
        terminated = (pg_state.done > 0.5) | ~finite
        reward = jnp.where(finite, pg_state.reward, jnp.nan)
        next_state = DMCEnvState(pg_state=pg_state, time=state.time + 1)
        return obs, next_state, reward, terminated, {}

    def reset_env(self, key, params):
        pg_state = _float_leaves(self._env.reset(key))
        state = DMCEnvState(pg_state=pg_state, time=jnp.int32(0))
        return jnp.asarray(pg_state.obs, jnp.float32), state

    def get_obs(self, state, params=None, key=None) -> Array:
        return jnp.asarray(state.pg_state.obs, jnp.float32)

    def is_terminated(self, state, params) -> Array:
        return jnp.asarray(state.pg_state.done) > 0.5

    def action_space(self, params=None) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (self._action_size,), jnp.float32)

    def observation_space(self, params=None) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, (self._obs_size,), jnp.float32)

    def check_action(self, action, params=None) -> None:
        """Raises ``ValueError`` unless a concrete ``action`` is finite with
        ``action_dim`` entries (for the Python API, outside ``jit``)."""
        values = np.asarray(action, dtype=np.float64)
        if values.size != self._action_size or not np.all(np.isfinite(values)):
            raise ValueError(
                f"{self.name}: actions must be {self._action_size} finite numbers, got {action!r}"
            )


def _float_leaves(pg_state):
    """Reward and done as float32 arrays, so reset and stepped states have one
    structure for gymnax's automatic reset."""
    return pg_state.replace(
        reward=jnp.asarray(pg_state.reward, jnp.float32),
        done=jnp.asarray(pg_state.done, jnp.float32),
    )


def make_dmc(name: str) -> tuple[DMCEnv, DMCEnvParams]:
    """``(env, params)`` of a registered ``<task>-dmc`` name."""
    if name not in registered_names():
        raise ValueError(
            f"unknown DM Control environment {name!r}; registered: {registered_names()}"
        )
    env = DMCEnv(name)
    return env, env.default_params


__all__ = [
    "DMC_TASKS",
    "DMCEnv",
    "DMCEnvParams",
    "DMCEnvState",
    "dmc_available",
    "make_dmc",
    "registered_names",
]
