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

from mbrl_jax.envs.jax_sim import SimEnv, SimEnvParams, SimEnvState

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


#: Brax's state and the episode's step count; the time limit lives in the params.
BraxEnvState = SimEnvState
BraxEnvParams = SimEnvParams


class BraxEnv(SimEnv):
    """A Brax task with gymnax's API (see the module docstring).

    Args:
      task: a Brax environment name (``brax.envs.get_environment``), e.g.
        ``"hopper"``.
      backend: Brax's physics pipeline (``"generalized"``, ``"positional"``,
        ``"spring"``; ``None``: the task's default).
      action_repeat: simulator steps per agent step, rewards summed (default 1).
      **kwargs: passed to the Brax environment's constructor.

    Raises:
      ValueError: Brax is not installed, it has no task of that name, or
        ``action_repeat`` is not an integer >= 1.
    """

    def __init__(self, task: str, backend: str | None = None, action_repeat: int = 1, **kwargs):
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
        self._attach(brax_envs.get_environment(task, **kwargs), action_repeat)

    @property
    def brax_env(self):
        """The wrapped Brax environment."""
        return self._env

    @property
    def name(self) -> str:
        return self._task + SUFFIX


def make_brax(name: str, action_repeat: int = 1) -> tuple[BraxEnv, BraxEnvParams]:
    """``(env, params)`` of a registered ``<task>-brax`` name, each action held
    for ``action_repeat`` simulator steps (:class:`BraxEnv`).

    Raises:
      ValueError: not a registered name, Brax is not installed, or
        ``action_repeat`` is not an integer >= 1.
    """
    if name not in registered_names():
        raise ValueError(f"unknown Brax environment {name!r}; registered: {registered_names()}")
    env = BraxEnv(name[: -len(SUFFIX)], action_repeat=action_repeat)
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
