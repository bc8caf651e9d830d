"""The environment itself as a model (planning with a known model: AlphaZero, MCTS)."""

from __future__ import annotations

from collections.abc import Callable

from mbrl_jax.core.types import Model


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


def env_model(env, env_params) -> Model:
    """A gymnax environment as a :class:`~mbrl_jax.core.types.Model`.

    States are the environment's own state pytrees, params are ``None`` (the
    environment's params are bound), ``step`` is :func:`env_model_step` and
    there is no ``update``: the true model has nothing to learn.
    """
    return Model(init=lambda key: None, step=env_model_step(env, env_params))
