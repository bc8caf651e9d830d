"""Tabular models: count-based maximum likelihood, last-seen deterministic, bootstrap ensemble.

Each has a factory returning a :class:`~mbrl_jax.core.types.Model`
(:func:`count_model`, :func:`deterministic_model`, :func:`tabular_ensemble_model`)
and exports the MDP it estimates for exact dynamic programming.

All are ``flax.struct`` pytrees updated by pure functions, so they jit, vmap over
seeds, and sit inside ``lax.scan`` carries.

Termination is modelled as a property of the *next state*: a state is
terminal once some transition into it ended an episode (``terminal_seen``).
That is exact for goal-reaching mazes and keeps the models ``O(S^2 A)``.

**Prior for unvisited pairs** (count models): a pair ``(s, a)`` with no data
stays in ``s`` with reward 0 (a self-loop), i.e. "nothing is known to happen".
With ``prior_count = c > 0`` the transition estimate becomes
``(N(s, a, .) + c / S) / (N(s, a) + c)``: a symmetric Dirichlet(c / S) prior
whose posterior mean blends counts with the uniform distribution.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from mbrl_jax.core.mdp import TabularMDP
from mbrl_jax.core.types import Array, Model, PRNGKey, Transition


# --------------------------------------------------------------------------- count model
@struct.dataclass
class CountModel:
    """Maximum-likelihood counts.

    Attributes:
      counts: ``[S, A, S]`` float32 transition counts ``N(s, a, s')``.
      reward_sum: ``[S, A]`` sum of observed rewards.
      terminal_seen: ``[S]`` bool, states some episode terminated in.
    """

    counts: Array
    reward_sum: Array
    terminal_seen: Array

    @property
    def num_states(self) -> int:
        return self.counts.shape[-3]

    @property
    def num_actions(self) -> int:
        return self.counts.shape[-2]


def count_model_init(num_states: int, num_actions: int) -> CountModel:
    """An empty count model for ``S`` states and ``A`` actions."""
    if num_states < 1 or num_actions < 1:
        raise ValueError(
            f"num_states and num_actions must be >= 1, got {num_states}, {num_actions}"
        )
    return CountModel(
        counts=jnp.zeros((num_states, num_actions, num_states), jnp.float32),
        reward_sum=jnp.zeros((num_states, num_actions), jnp.float32),
        terminal_seen=jnp.zeros((num_states,), bool),
    )


def count_model_update(model: CountModel, transition: Transition, weight=1.0) -> CountModel:
    """Adds one transition or a batch (any leading shape) by scatter-add.

    Args:
      model: the counts.
      transition: :class:`Transition` with int ``state``, ``action``, ``next_state``.
      weight: ``[]`` or broadcastable to the batch: how many times to count each
        transition (bootstrap weights).
    """
    s, a, s2 = transition.state, transition.action, transition.next_state
    w = jnp.broadcast_to(jnp.asarray(weight, jnp.float32), jnp.shape(s))
    return CountModel(
        counts=model.counts.at[s, a, s2].add(w),
        reward_sum=model.reward_sum.at[s, a].add(w * transition.reward),
        terminal_seen=model.terminal_seen.at[s2].max(jnp.asarray(transition.done, bool)),
    )


def visit_counts(model: CountModel) -> Array:
    """``[S, A]`` number of times each pair was seen."""
    return jnp.sum(model.counts, axis=-1)


def count_model_mdp(model: CountModel, prior_count: float = 0.0) -> TabularMDP:
    """The maximum-likelihood (or Dirichlet posterior-mean) MDP of the counts.

    Args:
      model: the counts (unbatched; vmap for a batch).
      prior_count: Dirichlet pseudo-count ``c >= 0`` spread uniformly over next
        states (see module docstring). ``0`` gives the self-loop prior.

    Returns:
      :class:`TabularMDP` with ``terminal = terminal_seen`` and ``start = 0``
      (replace ``start`` with the environment's).
    """
    num_states = model.num_states
    n = visit_counts(model)
    total = n + prior_count
    estimate = (model.counts + prior_count / num_states) / jnp.maximum(total, 1e-12)[..., None]
    self_loop = jnp.broadcast_to(
        jnp.eye(num_states, dtype=jnp.float32)[:, None, :], model.counts.shape
    )
    transition = jnp.where((total > 0)[..., None], estimate, self_loop)
    reward = model.reward_sum / jnp.maximum(n, 1.0)
    return TabularMDP(
        transition=transition,
        reward=reward,
        terminal=model.terminal_seen,
        start=jnp.int32(0),
    )


def _sample_outcome(key, row, reward_sum, terminal_seen, state):
    """Next state drawn in proportion to ``row [S]`` counts (self-loop if empty)."""
    n = jnp.sum(row)
    logits = jnp.where(row > 0, jnp.log(jnp.maximum(row, 1e-30)), -jnp.inf)
    sampled = jax.random.categorical(key, jnp.where(n > 0, logits, 0.0))
    next_state = jnp.where(n > 0, sampled, state).astype(jnp.int32)
    return next_state, reward_sum / jnp.maximum(n, 1.0), terminal_seen[next_state]


def count_model_step(
    model: CountModel, key: PRNGKey, state: Array, action: Array
) -> tuple[Array, Array, Array]:
    """Samples ``(next_state, reward, done)`` for one pair from the counts.

    The next state is drawn in proportion to the counts (self-loop if unseen);
    the reward is the mean observed reward; ``done`` is ``terminal_seen[next_state]``.
    """
    return _sample_outcome(
        key,
        model.counts[state, action],
        model.reward_sum[state, action],
        model.terminal_seen,
        state,
    )


def count_model(num_states: int, num_actions: int) -> Model:
    """The count model as a :class:`~mbrl_jax.core.types.Model`.

    ``update(params, key, transition)`` counts one transition or a batch
    (``key`` unused); ``step`` samples the next state from the counts.
    Export its MDP for dynamic programming with :func:`count_model_mdp`.
    """
    return Model(
        init=lambda key: count_model_init(num_states, num_actions),
        step=count_model_step,
        update=lambda params, key, transition: count_model_update(params, transition),
    )


# ---------------------------------------------------------- last-seen deterministic model
@struct.dataclass
class DeterministicModel:
    """Last observed outcome of each pair, as Dyna-Q keeps it.

    Unvisited pairs map to themselves with reward 0 ("nothing is known to
    happen"), which is also Dyna-Q+'s model of untried actions.

    Attributes:
      next_state: ``[S, A]`` int32 last observed next state.
      reward: ``[S, A]`` float32 last observed reward.
      done: ``[S, A]`` bool last observed termination.
    """

    next_state: Array
    reward: Array
    done: Array

    @property
    def num_states(self) -> int:
        return self.next_state.shape[-2]

    @property
    def num_actions(self) -> int:
        return self.next_state.shape[-1]


def deterministic_model_init(num_states: int, num_actions: int) -> DeterministicModel:
    """An empty last-seen model; unvisited pairs map to themselves with reward 0."""
    if num_states < 1 or num_actions < 1:
        raise ValueError(
            f"num_states and num_actions must be >= 1, got {num_states}, {num_actions}"
        )
    states = jnp.arange(num_states, dtype=jnp.int32)
    return DeterministicModel(
        next_state=jnp.broadcast_to(states[:, None], (num_states, num_actions)),
        reward=jnp.zeros((num_states, num_actions), jnp.float32),
        done=jnp.zeros((num_states, num_actions), bool),
    )


def deterministic_model_update(
    model: DeterministicModel, transition: Transition
) -> DeterministicModel:
    """Records one transition or a batch (the last of repeated pairs wins)."""
    s, a = transition.state, transition.action
    return DeterministicModel(
        next_state=model.next_state.at[s, a].set(jnp.asarray(transition.next_state, jnp.int32)),
        reward=model.reward.at[s, a].set(jnp.asarray(transition.reward, jnp.float32)),
        done=model.done.at[s, a].set(jnp.asarray(transition.done, bool)),
    )


def deterministic_model_step(
    model: DeterministicModel, key: PRNGKey, state: Array, action: Array
) -> tuple[Array, Array, Array]:
    """``(next_state, reward, done)`` last seen for the pair (``key`` unused)."""
    del key
    return model.next_state[state, action], model.reward[state, action], model.done[state, action]


def deterministic_model_mdp(model: DeterministicModel) -> TabularMDP:
    """The model as a dense :class:`TabularMDP` (deterministic rows).

    A state is terminal once some recorded transition into it terminated.
    """
    num_states = model.num_states
    transition = jax.nn.one_hot(model.next_state, num_states, dtype=jnp.float32)
    terminal = jnp.zeros((num_states,), bool).at[model.next_state].max(model.done)
    return TabularMDP(
        transition=transition, reward=model.reward, terminal=terminal, start=jnp.int32(0)
    )


def deterministic_model(num_states: int, num_actions: int) -> Model:
    """The last-seen model as a :class:`~mbrl_jax.core.types.Model`.

    ``update(params, key, transition)`` records one transition or a batch
    (``key`` unused); ``step`` is deterministic.
    """
    return Model(
        init=lambda key: deterministic_model_init(num_states, num_actions),
        step=deterministic_model_step,
        update=lambda params, key, transition: deterministic_model_update(params, transition),
    )


# ------------------------------------------------------------ bootstrap count ensemble
def ensemble_init(num_members: int, num_states: int, num_actions: int) -> CountModel:
    """``E`` empty count models stacked on a leading member axis ``[E, ...]``."""
    if num_members < 2:
        raise ValueError(f"num_members must be >= 2 for a spread, got {num_members}")
    single = count_model_init(num_states, num_actions)
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (num_members, *x.shape)), single)


def ensemble_update(ensemble: CountModel, key: PRNGKey, transition: Transition) -> CountModel:
    """Online bootstrap: each member counts each transition ``Poisson(1)`` times.

    Args:
      ensemble: stacked counts ``[E, ...]``.
      key: PRNG key for the bootstrap weights.
      transition: one transition or a batch ``[B]``.
    """
    num_members = ensemble.counts.shape[0]
    weights = jax.random.poisson(key, 1.0, (num_members, *jnp.shape(transition.state)))
    return jax.vmap(count_model_update, in_axes=(0, None, 0))(
        ensemble, transition, weights.astype(jnp.float32)
    )


def ensemble_mdps(ensemble: CountModel, prior_count: float = 0.0) -> TabularMDP:
    """Each member's MDP, stacked ``[E, ...]`` (for robust value iteration)."""
    return jax.vmap(lambda m: count_model_mdp(m, prior_count))(ensemble)


def ensemble_stats(ensemble: CountModel, prior_count: float = 0.0) -> dict[str, Array]:
    """Mean and standard deviation across members.

    Returns:
      ``{"transition_mean": [S, A, S], "transition_std": [S, A, S],
      "reward_mean": [S, A], "reward_std": [S, A]}``.
    """
    mdps = ensemble_mdps(ensemble, prior_count)
    return {
        "transition_mean": jnp.mean(mdps.transition, axis=0),
        "transition_std": jnp.std(mdps.transition, axis=0),
        "reward_mean": jnp.mean(mdps.reward, axis=0),
        "reward_std": jnp.std(mdps.reward, axis=0),
    }


def tabular_ensemble_step(
    ensemble: CountModel, key: PRNGKey, state: Array, action: Array
) -> tuple[Array, Array, Array]:
    """Steps one state through a uniformly drawn member's counts."""
    member_key, step_key = jax.random.split(key)
    m = jax.random.randint(member_key, (), 0, ensemble.counts.shape[0])
    return _sample_outcome(
        step_key,
        ensemble.counts[m, state, action],
        ensemble.reward_sum[m, state, action],
        ensemble.terminal_seen[m],
        state,
    )


def tabular_ensemble_model(num_members: int, num_states: int, num_actions: int) -> Model:
    """The bootstrap count ensemble as a :class:`~mbrl_jax.core.types.Model`.

    ``update(params, key, transition)`` is the online Poisson bootstrap
    (:func:`ensemble_update`); ``step`` draws a member uniformly for each call
    (Thompson-style) and samples from its counts. :func:`ensemble_mdps`
    exports every member's MDP.
    """
    return Model(
        init=lambda key: ensemble_init(num_members, num_states, num_actions),
        step=tabular_ensemble_step,
        update=ensemble_update,
    )
