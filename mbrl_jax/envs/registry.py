"""``make(name) -> (env, params)`` for our mazes and gymnax's environments, and the
known task functions of each (:func:`task_functions`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import gymnax
import jax.numpy as jnp
import numpy as np

from mbrl_jax.envs import brax_env, dmc, layouts
from mbrl_jax.envs.continuous_cartpole import ContinuousCartPole, ContinuousCartPoleParams
from mbrl_jax.envs.layouts import make_maze_params, validate_params
from mbrl_jax.envs.maze import GridMaze, MazeParams
from mbrl_jax.envs.tasks import CARTPOLE, INVERTED_PENDULUM, PENDULUM, TaskFunctions

_MAZES: dict[str, Callable[[], MazeParams]] = {
    "GridWorld-5x5": lambda: make_maze_params(
        layouts.GRID_WORLD_5X5, step_reward=-0.01, goal_reward=1.0, max_steps_in_episode=100
    ),
    "DynaMaze": lambda: make_maze_params(layouts.DYNA_MAZE),
    "BlockingMaze": lambda: make_maze_params(
        layouts.BLOCKING_MAZE, layouts.BLOCKING_MAZE_AFTER, change_step=1000
    ),
    "ShortcutMaze": lambda: make_maze_params(
        layouts.SHORTCUT_MAZE, layouts.SHORTCUT_MAZE_AFTER, change_step=3000
    ),
}


_CONTINUOUS = {"ContinuousCartPole": lambda: (ContinuousCartPole(), ContinuousCartPoleParams())}

# Known reward / termination / state-cost functions of registered environments.
_TASKS: dict[str, TaskFunctions] = {
    "ContinuousCartPole": CARTPOLE,
    "CartPole-v1": CARTPOLE,
    "Pendulum-v1": PENDULUM,
    "inverted_pendulum-brax": INVERTED_PENDULUM,
}


def task_functions(env) -> TaskFunctions | None:
    """The known task functions of an environment (or of its registered name).

    Returns ``None`` for an environment with none registered (its models learn
    reward and termination).
    """
    name = env if isinstance(env, str) else getattr(env, "name", None)
    return _TASKS.get(name)


def maze_names() -> list[str]:
    """Names of the mazes of this library."""
    return list(_MAZES)


def names() -> list[str]:
    """Every name :func:`make` accepts: our mazes, our other envs, gymnax's, then
    Brax's tasks (``<task>-brax``; the ``[brax]`` extra) and the DM Control
    Suite's (``<task>-dmc``; the ``[dmc]`` extra)."""
    return (
        maze_names()
        + list(_CONTINUOUS)
        + list(gymnax.registered_envs)
        + brax_env.registered_names()
        + dmc.registered_names()
    )


def _apply_overrides(params, overrides: dict, env_name: str):
    fields = {f.name: f for f in dataclasses.fields(params)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {unknown} for {env_name}; its parameters are {sorted(fields)}"
        )
    replaced = {}
    for name, value in overrides.items():
        old = getattr(params, name)
        if isinstance(old, jnp.ndarray | np.ndarray):
            value = jnp.asarray(value, dtype=jnp.asarray(old).dtype)
        replaced[name] = value
    return params.replace(**replaced)


def make(name: str, *, action_repeat: int | None = None, **param_overrides):
    """Creates an environment and its default parameters.

    Args:
      name: one of :func:`names` (e.g. ``"DynaMaze"``, ``"BlockingMaze"``, ``"CartPole-v1"``).
      action_repeat: simulator environments only (``<task>-brax``,
        ``<task>-dmc``): simulator steps per agent step, rewards summed; the
        default time limit becomes ``ceil(1000 / action_repeat)`` agent steps.
        ``None``: 1.
      **param_overrides: fields of the environment's params to replace, e.g.
        ``make("DynaMaze", slip_prob=0.1, max_steps_in_episode=500)``.

    Returns:
      ``(env, params)``.

    Raises:
      ValueError: unknown name or parameter, an out-of-range value, an
        ``action_repeat`` for an environment that is not a simulator's (or
        not an integer >= 1), a ``<task>-brax`` name without Brax installed
        (``pip install -e ".[brax]"``) or a ``<task>-dmc`` name without MuJoCo
        Playground (``pip install -e ".[dmc]"``).
    """
    simulator = name in brax_env.registered_names() or name in dmc.registered_names()
    if action_repeat is not None and not simulator and name in names():
        raise ValueError(
            f"action_repeat: only simulator environments (<task>-brax, <task>-dmc) "
            f"take an action repeat; {name!r} is not one"
        )
    repeat = 1 if action_repeat is None else action_repeat
    if name in _MAZES:
        params = _apply_overrides(_MAZES[name](), param_overrides, name)
        validate_params(params)
        return GridMaze(name=name, default_params=params), params
    if name in _CONTINUOUS:
        env, params = _CONTINUOUS[name]()
        return env, _apply_overrides(params, param_overrides, name)
    if name in gymnax.registered_envs:
        env, params = gymnax.make(name)
        return env, _apply_overrides(params, param_overrides, name)
    if name in brax_env.registered_names():
        env, params = brax_env.make_brax(name, action_repeat=repeat)
        return env, _apply_overrides(params, param_overrides, name)
    if name in dmc.registered_names():
        env, params = dmc.make_dmc(name, action_repeat=repeat)
        return env, _apply_overrides(params, param_overrides, name)
    raise ValueError(f"unknown environment {name!r}; available: {', '.join(names())}")
