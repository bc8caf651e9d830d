"""Finite MDPs as pytrees: the ground truth of exact dynamic programming.

Environments with discrete states export them (``envs.to_tabular``), tabular
models export the MDP they estimate, and :mod:`mbrl_jax.planners.dp` solves
them. Shape letters: S states, A actions, J successors per pair (sparse form).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from mbrl_jax.core.types import Array


@struct.dataclass
class TabularMDP:
    """A finite MDP with dense transitions.

    Attributes:
      transition: ``[S, A, S]`` probabilities ``P(s' | s, a)``; rows sum to one.
      reward: ``[S, A]`` expected reward of taking ``a`` in ``s``.
      terminal: ``[S]`` bool; a terminal state has value zero.
      start: ``[]`` int32 start state.
    """

    transition: Array
    reward: Array
    terminal: Array
    start: Array

    @property
    def num_states(self) -> int:
        return self.reward.shape[-2]

    @property
    def num_actions(self) -> int:
        return self.reward.shape[-1]


@struct.dataclass
class SparseTabularMDP:
    """A finite MDP whose transitions are stored as successor lists.

    Each pair ``(s, a)`` has ``J`` possible successors; memory is ``O(S A J)``
    instead of ``O(S^2 A)``, which is what makes exact planning on mazes with
    tens of thousands of cells cheap.

    Attributes:
      next_state: ``[S, A, J]`` int32 successor indices.
      prob: ``[S, A, J]`` probability of each successor (sums to one over ``J``;
        repeated successors add up).
      reward: ``[S, A]`` expected reward.
      terminal: ``[S]`` bool.
      start: ``[]`` int32 start state.
    """

    next_state: Array
    prob: Array
    reward: Array
    terminal: Array
    start: Array

    @property
    def num_states(self) -> int:
        return self.reward.shape[-2]

    @property
    def num_actions(self) -> int:
        return self.reward.shape[-1]


AnyMDP = TabularMDP | SparseTabularMDP


def densify(mdp: AnyMDP) -> TabularMDP:
    """Returns the dense ``[S, A, S]`` form of an MDP."""
    if isinstance(mdp, TabularMDP):
        return mdp
    num_states = mdp.num_states
    one_hot = jax.nn.one_hot(mdp.next_state, num_states, dtype=mdp.prob.dtype)
    transition = jnp.einsum("sak,sakt->sat", mdp.prob, one_hot)
    return TabularMDP(
        transition=transition, reward=mdp.reward, terminal=mdp.terminal, start=mdp.start
    )


def validate_mdp(mdp: AnyMDP) -> None:
    """Raises ``ValueError`` if the arrays of ``mdp`` disagree in shape.

    Works on unbatched MDPs and on MDPs with leading batch axes (the trailing
    axes are checked). Shapes are static, so this also runs under ``jit``.
    """
    reward_shape = jnp.shape(mdp.reward)
    if len(reward_shape) < 2:
        raise ValueError(f"mdp.reward must be [..., S, A], got shape {reward_shape}")
    *batch, num_states, num_actions = reward_shape
    batch = tuple(batch)
    if jnp.shape(mdp.terminal) != (*batch, num_states):
        raise ValueError(
            f"mdp.terminal must have shape {(*batch, num_states)} to match reward "
            f"{reward_shape}, got {jnp.shape(mdp.terminal)}"
        )
    if isinstance(mdp, SparseTabularMDP):
        ns, pr = jnp.shape(mdp.next_state), jnp.shape(mdp.prob)
        if ns != pr or ns[:-1] != reward_shape:
            raise ValueError(
                f"mdp.next_state {ns} and mdp.prob {pr} must both be [..., S, A, J] "
                f"matching reward {reward_shape}"
            )
    else:
        expected = (*batch, num_states, num_actions, num_states)
        if jnp.shape(mdp.transition) != expected:
            raise ValueError(
                f"mdp.transition must have shape [..., S, A, S] = {expected} to match "
                f"reward {reward_shape}, got {jnp.shape(mdp.transition)}"
            )
