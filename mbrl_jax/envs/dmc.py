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

from mbrl_jax.envs.jax_sim import SimEnv, SimEnvParams, SimEnvState

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


#: Playground's state and the episode's step count; the time limit lives in the params.
DMCEnvState = SimEnvState
DMCEnvParams = SimEnvParams


class DMCEnv(SimEnv):
    """A DM Control Suite task from MuJoCo Playground with gymnax's API.

    Args:
      name: ``"cartpole_swingup-dmc"``, ``"cartpole_swingup"`` or a Playground
        name such as ``"CartpoleSwingup"``.
      impl: MJX backend; ``"jax"`` (default, pure JAX) or ``"warp"``.
      action_repeat: simulator steps per agent step, rewards summed (default 1;
        the DM Control benchmarks of DreamerV3 use 2). The default time limit
        becomes ``ceil(1000 / action_repeat)`` agent steps.
      **config_overrides: more Playground config overrides.

    Raises:
      ValueError: Playground is not installed, it has no task of that name, or
        ``action_repeat`` is not an integer >= 1.
    """

    def __init__(self, name: str, impl: str = "jax", action_repeat: int = 1, **config_overrides):
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
        self._attach(registry.load(pg_name, config_overrides=overrides), action_repeat)

    @property
    def playground_env(self):
        """The wrapped Playground environment."""
        return self._env

    @property
    def name(self) -> str:
        return self._task + SUFFIX


def make_dmc(name: str, action_repeat: int = 1) -> tuple[DMCEnv, DMCEnvParams]:
    """``(env, params)`` of a registered ``<task>-dmc`` name, each action held
    for ``action_repeat`` simulator steps (:class:`DMCEnv`)."""
    if name not in registered_names():
        raise ValueError(
            f"unknown DM Control environment {name!r}; registered: {registered_names()}"
        )
    env = DMCEnv(name, action_repeat=action_repeat)
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
