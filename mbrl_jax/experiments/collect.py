"""Collecting transitions from an environment with a random policy, as one ``lax.scan``."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mbrl_jax.core.types import PRNGKey, Transition


def random_transitions(key: PRNGKey, env, env_params, num_steps: int) -> Transition:
    """Runs a uniformly random policy for ``num_steps`` steps (auto-resetting).

    Args:
      key: PRNG key.
      env: a discrete-action gymnax environment.
      env_params: its params.
      num_steps: static number of steps.

    Returns:
      :class:`Transition` with fields of shape ``[num_steps, ...]``; ``next_state``
      is the observation the step produced (before auto-reset) and ``done`` is
      termination (not truncation).
    """
    if int(num_steps) < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    num_actions = env.action_space(env_params).n
    reset_key, scan_key = jax.random.split(key)
    obs, state = env.reset(reset_key, env_params)

    def one_step(carry, step_key):
        obs, state = carry
        action_key, env_key = jax.random.split(step_key)
        action = jax.random.randint(action_key, (), 0, num_actions)
        next_obs, next_state, reward, terminated, _, info = env.step(
            env_key, state, action, env_params
        )
        transition = Transition(obs, action, reward, info["final_observation"], terminated)
        return (next_obs, next_state), transition

    _, transitions = jax.lax.scan(one_step, (obs, state), jax.random.split(scan_key, num_steps))
    return jax.tree.map(jnp.asarray, transitions)
