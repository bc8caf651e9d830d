"""Enumerating a maze into an exact finite MDP."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mbrl_jax.core.mdp import SparseTabularMDP, TabularMDP, densify
from mbrl_jax.envs.maze import NUM_ACTIONS, GridMaze, MazeParams, move


def to_tabular(
    env: GridMaze, params: MazeParams, phase: int | jax.Array = 0, sparse: bool = False
) -> TabularMDP | SparseTabularMDP:
    """Enumerates a maze into its exact MDP for one wall phase.

    Each pair ``(s, a)`` has ``K = A + 1`` listed successors: the intended move
    with probability ``1 - slip_prob`` and each of the ``A`` moves with
    probability ``slip_prob / A``. The goal and wall cells are terminal (wall
    cells are unreachable; the goal ends the episode). Time-limit truncation is
    not part of the MDP.

    Args:
      env: the maze environment (unused beyond type; kept for the gymnax-style signature).
      params: the maze; a single (unbatched) maze, or use ``jax.vmap`` over params.
      phase: wall phase, 0 (before ``change_step``) or 1 (after).
      sparse: return :class:`SparseTabularMDP` (``O(S A K)`` memory) instead of the
        dense ``[S, A, S]`` :class:`TabularMDP`.

    Returns:
      The MDP; ``reward[s, a]`` is the expected reward of the step.
    """
    del env
    if isinstance(phase, int) and phase not in (0, 1):
        raise ValueError(f"phase must be 0 or 1, got {phase}")
    walls = params.walls[phase]
    num_states = params.num_states
    cells = jnp.arange(num_states, dtype=jnp.int32)
    actions = jnp.arange(NUM_ACTIONS, dtype=jnp.int32)
    # successor[s, b]: where action b leads from s.
    successor = jax.vmap(lambda s: jax.vmap(lambda b: move(walls, s, b))(actions))(cells)
    intended = successor[:, :, None]  # [S, A, 1]
    slipped = jnp.broadcast_to(successor[:, None, :], (num_states, NUM_ACTIONS, NUM_ACTIONS))
    next_state = jnp.concatenate([intended, slipped], axis=-1)  # [S, A, A + 1]
    p = params.slip_prob
    prob = jnp.concatenate(
        [
            jnp.full((num_states, NUM_ACTIONS, 1), 1.0 - p),
            jnp.full((num_states, NUM_ACTIONS, NUM_ACTIONS), p / NUM_ACTIONS),
        ],
        axis=-1,
    ).astype(jnp.float32)

    terminal = (cells == params.goal) | walls.reshape(-1)
    # Terminal states loop on themselves with no reward.
    next_state = jnp.where(terminal[:, None, None], cells[:, None, None], next_state)
    step_reward = jnp.where(next_state == params.goal, params.goal_reward, params.step_reward)
    reward = jnp.where(terminal[:, None], 0.0, jnp.sum(prob * step_reward, axis=-1))
    mdp = SparseTabularMDP(
        next_state=next_state,
        prob=prob,
        reward=reward.astype(jnp.float32),
        terminal=terminal,
        start=jnp.asarray(params.start, jnp.int32),
    )
    return mdp if sparse else densify(mdp)
