"""The environment itself as a model (for planning with a known model)."""

from __future__ import annotations

from collections.abc import Callable


def env_model_step(env, env_params) -> Callable:
    """``step(params, key, state, action) -> (next_state, reward, terminated)`` via ``step_env``.

    ``params`` is ignored (the env's params are bound); there is no auto-reset,
    so rollouts continue past termination and planners mask what follows.
    """

    def step(params, key, state, action):
        del params
        _, next_state, reward, terminated, _ = env.step_env(key, state, action, env_params)
        return next_state, reward, terminated

    return step
