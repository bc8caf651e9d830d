"""Observation wrappers that turn a maze's cell index into a vector for neural models."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from gymnax.environments import spaces

from mbrl_jax.core.types import Array
from mbrl_jax.envs.maze import GridMaze, MazeParams

_MODES = ("one_hot", "coords")


def vector_observation(position: Array, params: MazeParams, mode: str = "one_hot") -> Array:
    """Turns cell indices into vectors.

    Args:
      position: ``[...]`` int32 cell indices.
      params: the maze.
      mode: ``"one_hot"`` gives ``[..., S]`` float32; ``"coords"`` gives ``[..., 2]``
        float32 (row, col) scaled to ``[0, 1]``.
    """
    if mode == "one_hot":
        return jax.nn.one_hot(position, params.num_states, dtype=jnp.float32)
    if mode == "coords":
        height, width = params.height, params.width
        row, col = position // width, position % width
        return jnp.stack([row / max(height - 1, 1), col / max(width - 1, 1)], axis=-1).astype(
            jnp.float32
        )
    raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")


class VectorObservation:
    """Wraps a :class:`GridMaze` so that observations are vectors instead of indices.

    ``reset``/``step``/``get_obs`` keep gymnax's signatures; the state is the
    maze's own.
    """

    def __init__(self, env: GridMaze, mode: str = "one_hot"):
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        self._env = env
        self.mode = mode

    def __getattr__(self, name):
        return getattr(self._env, name)

    def reset(self, key, params=None):
        params = self._env.default_params if params is None else params
        obs, state = self._env.reset(key, params)
        return vector_observation(obs, params, self.mode), state

    def step(self, key, state, action, params=None):
        params = self._env.default_params if params is None else params
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
        info = {
            **info,
            "final_observation": vector_observation(info["final_observation"], params, self.mode),
        }
        return (
            vector_observation(obs, params, self.mode),
            state,
            reward,
            terminated,
            truncated,
            info,
        )

    def get_obs(self, state, params=None, key=None):
        params = self._env.default_params if params is None else params
        return vector_observation(self._env.get_obs(state, params), params, self.mode)

    def observation_space(self, params: MazeParams) -> spaces.Box:
        shape = (params.num_states,) if self.mode == "one_hot" else (2,)
        return spaces.Box(0.0, 1.0, shape, jnp.float32)
