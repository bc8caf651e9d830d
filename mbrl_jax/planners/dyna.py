"""Dyna planning: tabular Q-learning updates replayed from a model.

Functions here work on one agent (unbatched ``q [S, A]``); ``jax.vmap`` batches
seeds. They are the building blocks of :mod:`mbrl_jax.agents.dyna_q` and
usable on their own with any :class:`~mbrl_jax.models.DeterministicModel`.

Random numbers: a planning phase of ``n`` updates needs ``n`` (Dyna-Q) or
``2n`` (Dyna-Q+) uniform indices. Drawing each from ``jax.random`` costs more
than the update itself; instead one 32-bit random word seeds the counter-based
hash of :mod:`mbrl_jax.random`, which yields the indices in a handful of
integer operations each.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mbrl_jax.models.tabular import DeterministicModel
from mbrl_jax.random import hashed_index
from mbrl_jax.types import Array


def q_learning_update(
    q: Array,
    state: Array,
    action: Array,
    reward: Array,
    next_state: Array,
    done: Array,
    learning_rate: Array | float,
    discount: Array | float,
) -> Array:
    """One tabular Q-learning update.

    ``Q(s, a) += lr * (r + discount * (1 - done) * max_a' Q(s', a') - Q(s, a))``.

    Args:
      q: ``[S, A]`` action values.
      state, action, next_state: ``[]`` int32.
      reward: ``[]`` float32.
      done: ``[]`` bool, True if ``next_state`` is terminal (no bootstrap).
      learning_rate, discount: scalars (may be traced).

    Returns:
      ``[S, A]`` updated action values.
    """
    target = reward + discount * (1.0 - done.astype(q.dtype)) * jnp.max(q[next_state])
    return q.at[state, action].add(learning_rate * (target - q[state, action]))


def sample_planning_pairs(
    model: DeterministicModel, seed: Array, counter: Array, untried_actions: bool
) -> tuple[Array, Array]:
    """Pairs to replay: ``(state, action)`` with the shape of ``counter``.

    Dyna-Q (``untried_actions=False``): a uniformly drawn visited pair.
    Dyna-Q+ (``untried_actions=True``): a uniformly drawn visited state and a
    uniformly drawn action (untried actions lead back to the state with reward 0
    in the model).
    """
    num_actions = model.num_actions
    if untried_actions:
        i = hashed_index(seed, 2 * counter, model.num_states_visited)
        state = model.state_list[i]
        action = hashed_index(seed, 2 * counter + 1, jnp.int32(num_actions))
        return state, action
    flat = model.pair_list[hashed_index(seed, counter, model.num_pairs)]
    return flat // num_actions, flat % num_actions


def _replay_targets(q, model, state, action, discount, kappa, last_tried, step):
    next_state = model.next_state[state, action]
    reward = model.reward[state, action]
    if kappa is not None:
        tau = (step - last_tried[state, action]).astype(jnp.float32)
        reward = reward + kappa * jnp.sqrt(jnp.maximum(tau, 0.0))
    done = model.done[state, action].astype(q.dtype)
    return reward + discount * (1.0 - done) * jnp.max(q[next_state], axis=-1)


def dyna_planning(
    q: Array,
    model: DeterministicModel,
    seed: Array,
    num_updates: int,
    learning_rate: Array | float,
    discount: Array | float,
    kappa: Array | float | None = None,
    last_tried: Array | None = None,
    step: Array | None = None,
    batched: bool = False,
) -> Array:
    """``num_updates`` Q-learning updates on pairs replayed from the model.

    Args:
      q: ``[S, A]`` action values.
      model: last-seen model with at least one visited pair.
      seed: ``[]`` uint32 random word (from ``jax.random.bits``).
      num_updates: static number of updates ``n``.
      learning_rate, discount: scalars (may be traced).
      kappa: Dyna-Q+ bonus weight; ``None`` for Dyna-Q. With it the planning
        reward is ``r + kappa * sqrt(step - last_tried[s, a])`` and pairs are
        drawn as a visited state with any action.
      last_tried: ``[S, A]`` int32 real step at which each pair was last tried
        (required with ``kappa``).
      step: ``[]`` int32 current real step (required with ``kappa``).
      batched: ``False`` (textbook): updates one after another, each seeing the
        previous ones. ``True``: all ``n`` targets computed from the same ``q`` and
        applied at once (repeated pairs add up), one gather/scatter instead of
        ``n`` sequential ones; a different algorithm, closer to a Jacobi sweep
        over the drawn pairs (a pair drawn several times is updated once).

    Returns:
      ``[S, A]`` updated action values.
    """
    if num_updates < 1:
        return q
    plus = kappa is not None
    if plus and (last_tried is None or step is None):
        raise ValueError("Dyna-Q+ planning needs last_tried and step")
    seed = jnp.asarray(seed, jnp.uint32)

    if batched:
        counters = jnp.arange(num_updates, dtype=jnp.uint32)
        state, action = sample_planning_pairs(model, seed, counters, plus)
        target = _replay_targets(q, model, state, action, discount, kappa, last_tried, step)
        # A pair drawn k times gets the mean of its k (identical-model) errors, not
        # k times the error: with learning_rate 1 a sum would overshoot. Counting
        # the draws by an [n, n] comparison avoids two [S, A] temporaries.
        flat = state * q.shape[-1] + action
        draws = jnp.sum(flat[:, None] == flat[None, :], axis=1).astype(q.dtype)
        return q.at[state, action].add(learning_rate * (target - q[state, action]) / draws)

    def body(i, q):
        state, action = sample_planning_pairs(model, seed, jnp.asarray(i, jnp.uint32), plus)
        target = _replay_targets(q, model, state, action, discount, kappa, last_tried, step)
        return q.at[state, action].add(learning_rate * (target - q[state, action]))

    return jax.lax.fori_loop(0, num_updates, body, q)
