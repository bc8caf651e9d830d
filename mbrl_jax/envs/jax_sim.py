"""The gymnax API over an external pure-JAX simulator (Brax, MuJoCo Playground).

Both packages expose an environment with ``reset(key) -> state`` and
``step(state, action) -> state``, whose ``state`` is a pytree carrying
``obs``, ``reward`` and ``done``. :class:`SimEnv` gives such an environment
the interface of every environment of this library (``reset(key, params)``,
``step(key, state, action, params)`` with automatic reset and
``info["final_observation"]``), so agents, models and diagnostics take it
unchanged and it compiles into the same program as the agent.

* Actions are floats in ``[-1, 1]``. Finite actions outside are clipped; a
  NaN or inf action ends the episode with a NaN reward, so a broken policy
  shows in the return instead of silently pushing with nothing.
* The simulator's ``done`` is the termination; ``params.max_steps_in_episode``
  is a truncation (agents bootstrap through it).
* ``action_repeat`` (a constructor setting, default 1) applies each action for
  that many simulator steps and sums their rewards, stopping at a
  termination (the DM Control benchmark convention: DreamerV3 uses 2). The
  default time limit is then ``ceil(1000 / action_repeat)`` agent steps, so an
  episode still spans 1,000 simulator steps.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from mbrl_jax.core.types import Array


@struct.dataclass
class SimEnvState(environment.EnvState):
    """The simulator's own state (a pytree) and the steps taken in this episode."""

    sim_state: Any
    time: Array


@struct.dataclass
class SimEnvParams(environment.EnvParams):
    max_steps_in_episode: int = 1000


class SimEnv(environment.Environment[SimEnvState, SimEnvParams]):
    """Base of the wrappers: subclasses set the simulator with :meth:`_attach` and
    name themselves with :attr:`name`."""

    #: Simulator steps in an episode of the default time limit.
    episode_sim_steps = 1000

    def _attach(self, sim_env, action_repeat: int = 1) -> None:
        repeat = action_repeat
        if isinstance(repeat, bool) or not isinstance(repeat, int | np.integer) or repeat < 1:
            raise ValueError(f"action_repeat must be an integer >= 1, got {repeat!r}")
        self._action_repeat = int(repeat)
        self._env = sim_env
        self._action_size = int(sim_env.action_size)
        size = sim_env.observation_size
        self._obs_size = int(size if np.ndim(size) == 0 else np.prod(size))

    @property
    def action_repeat(self) -> int:
        """Simulator steps per agent step."""
        return self._action_repeat

    @property
    def default_params(self) -> SimEnvParams:
        return SimEnvParams(
            max_steps_in_episode=math.ceil(self.episode_sim_steps / self._action_repeat)
        )

    def step_env(self, key, state, action, params):
        del key  # the simulators keep their own keys in their state
        action = jnp.reshape(jnp.asarray(action, jnp.float32), (self._action_size,))
        finite = jnp.all(jnp.isfinite(action))
        action = jnp.clip(jnp.where(jnp.isfinite(action), action, 0.0), -1.0, 1.0)
        if self._action_repeat == 1:
            sim_state = _float_leaves(self._env.step(state.sim_state, action))
            total = sim_state.reward
        else:
            sim_state, total = self._repeat(state.sim_state, action)
        obs = jnp.asarray(sim_state.obs, jnp.float32).reshape(self._obs_size)
        terminated = (sim_state.done > 0.5) | ~finite
        reward = jnp.where(finite, total, jnp.nan)
        next_state = SimEnvState(sim_state=sim_state, time=state.time + 1)
        return obs, next_state, reward, terminated, {}

    def _repeat(self, sim_state, action):
        """``action_repeat`` simulator steps; the state stops changing (and the
        rewards stop adding up) at the first termination."""

        def body(carry, _):
            current, total = carry
            stepped = _float_leaves(self._env.step(current, action))
            stop = current.done > 0.5
            current = jax.tree.map(lambda old, new: jnp.where(stop, old, new), current, stepped)
            total = total + jnp.where(stop, 0.0, stepped.reward)
            return (current, total), None

        (sim_state, total), _ = jax.lax.scan(
            body, (sim_state, jnp.float32(0.0)), None, length=self._action_repeat
        )
        return sim_state, total

    def reset_env(self, key, params):
        sim_state = _float_leaves(self._env.reset(key))
        state = SimEnvState(sim_state=sim_state, time=jnp.int32(0))
        return self.get_obs(state), state

    def get_obs(self, state, params=None, key=None) -> Array:
        return jnp.asarray(state.sim_state.obs, jnp.float32).reshape(self._obs_size)

    def is_terminated(self, state, params) -> Array:
        return jnp.asarray(state.sim_state.done) > 0.5

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


def _float_leaves(sim_state):
    """Reward and done as float32 arrays (some tasks return Python floats), so reset
    and stepped states have one structure for gymnax's automatic reset."""
    return sim_state.replace(
        reward=jnp.asarray(sim_state.reward, jnp.float32),
        done=jnp.asarray(sim_state.done, jnp.float32),
    )
