"""Pieces shared by agents: what an environment offers, epsilon-greedy action choice."""

from __future__ import annotations

import jax.numpy as jnp
from gymnax.environments import spaces

from mbrl_jax.core.types import Array


def discrete_sizes(env, env_params) -> tuple[int, int]:
    """``(num_states, num_actions)`` of an env with discrete observations and actions.

    Raises:
      ValueError: if the observation is not a discrete state index or actions are not discrete.
    """
    obs_space = env.observation_space(env_params)
    act_space = env.action_space(env_params)
    if not isinstance(obs_space, spaces.Discrete):
        raise ValueError(
            f"env: tabular agents need a discrete state index as observation; "
            f"{getattr(env, 'name', type(env).__name__)} observes {obs_space!r} "
            f"(shape {getattr(obs_space, 'shape', None)})"
        )
    if not isinstance(act_space, spaces.Discrete):
        raise ValueError(f"env: tabular agents need discrete actions, got {act_space!r}")
    return int(obs_space.n), int(act_space.n)


def num_discrete_actions(env, env_params) -> int:
    """The number of actions of a discrete-action environment, or a ``ValueError``."""
    space = env.action_space(env_params)
    if not hasattr(space, "n"):
        raise ValueError(f"env: tree search needs discrete actions, got {space!r}")
    return int(space.n)


def vector_observation_shape(env, env_params, agent: str) -> tuple[int]:
    """``(D,)``, the observation shape of an env that observes float vectors, or a
    ``ValueError`` that says what the env observes and how to wrap a maze."""
    space = env.observation_space(env_params)
    name = getattr(env, "name", type(env).__name__)
    if isinstance(space, spaces.Discrete):
        raise ValueError(
            f"env: {agent} needs vector observations of shape (D,); {name} observes a "
            f"discrete state index ({space.n} states): wrap it, "
            "envs.VectorObservation(env) gives one-hot vectors"
        )
    shape = tuple(getattr(space, "shape", ()))
    if len(shape) != 1:
        raise ValueError(
            f"env: {agent} needs vector observations of shape (D,); {name} observes shape {shape}"
        )
    return shape


def epsilon_greedy(q_row: Array, epsilon: Array, bits: Array) -> Array:
    """Epsilon-greedy choice with greedy ties broken uniformly at random.

    Args:
      q_row: ``[A]`` action values of the current state.
      epsilon: ``[]`` exploration probability.
      bits: ``[A + 1]`` uint32 random words: word 0 decides exploration and the
        random action, words ``1..A`` break ties among greedy actions.

    Returns:
      ``[]`` int32 action.
    """
    num_actions = q_row.shape[-1]
    u = (bits[0] >> 8).astype(jnp.float32) * jnp.float32(2.0**-24)
    explore = u < epsilon
    random_action = (bits[0] % jnp.uint32(num_actions)).astype(jnp.int32)
    is_best = q_row == jnp.max(q_row)
    noise = jnp.where(is_best, bits[1:].astype(jnp.float32), -1.0)
    greedy = jnp.argmax(noise).astype(jnp.int32)
    return jnp.where(explore, random_action, greedy)
