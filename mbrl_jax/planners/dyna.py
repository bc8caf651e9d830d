"""Dyna planning: tabular Q-learning updates on experience simulated by any model.

Functions here work on one agent (unbatched ``q [S, A]``); ``jax.vmap`` batches
seeds. They plan through the model contract only,
``model.step(params, key, state, action)``, so the last-seen deterministic
model of Dyna-Q, a count model, a bootstrap ensemble or a neural model over
one-hot states (:func:`mbrl_jax.models.wrappers.indexed_states`) all plan
the same way.

*Search control* -- which pairs to simulate -- is the agent's memory of real
experience, :class:`VisitedPairs`: visited pairs and states in append-only
lists, so drawing a visited pair is one index and one gather (``O(1)``), not a
scan over ``S x A``.

Random numbers: a planning phase of ``n`` updates needs ``n`` (Dyna-Q) or
``2n`` (Dyna-Q+) uniform indices and ``n`` model keys. Drawing each from
``jax.random`` costs more than the update itself; instead one 32-bit random
word seeds the counter-based hash of :mod:`mbrl_jax.core.random`, which yields
the indices and the model's key words in a handful of integer operations
each (a deterministic model never reads its key, and the compiler drops it).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from mbrl_jax.core.random import hashed_bits, hashed_index
from mbrl_jax.core.types import Array, Model, Transition


# --------------------------------------------------------------------- search control
@struct.dataclass
class VisitedPairs:
    """The pairs and states tried in the real environment.

    Attributes:
      visited: ``[S, A]`` bool.
      pair_list: ``[S * A]`` int32 flat indices ``s * A + a`` of visited pairs,
        in order of first visit; entries past ``num_pairs`` are unused.
      num_pairs: ``[]`` int32.
      state_list: ``[S]`` int32 visited states in order of first visit.
      num_states_visited: ``[]`` int32.
    """

    visited: Array
    pair_list: Array
    num_pairs: Array
    state_list: Array
    num_states_visited: Array

    @property
    def num_states(self) -> int:
        return self.visited.shape[-2]

    @property
    def num_actions(self) -> int:
        return self.visited.shape[-1]


def visited_init(num_states: int, num_actions: int) -> VisitedPairs:
    """No pair visited yet."""
    if num_states < 1 or num_actions < 1:
        raise ValueError(
            f"num_states and num_actions must be >= 1, got {num_states}, {num_actions}"
        )
    return VisitedPairs(
        visited=jnp.zeros((num_states, num_actions), bool),
        pair_list=jnp.zeros((num_states * num_actions,), jnp.int32),
        num_pairs=jnp.int32(0),
        state_list=jnp.zeros((num_states,), jnp.int32),
        num_states_visited=jnp.int32(0),
    )


def visited_update(memory: VisitedPairs, state: Array, action: Array) -> VisitedPairs:
    """Records one real pair (unbatched)."""
    num_actions = memory.num_actions
    new_pair = ~memory.visited[state, action]
    new_state = ~jnp.any(memory.visited[state])
    # The slot at num_pairs lies past the end of the list; writing into it when the
    # pair is not new keeps its old value, so no branch is needed.
    pair_slot = jnp.minimum(memory.num_pairs, memory.pair_list.shape[0] - 1)
    pair_list = memory.pair_list.at[pair_slot].set(
        jnp.where(new_pair, state * num_actions + action, memory.pair_list[pair_slot])
    )
    state_slot = jnp.minimum(memory.num_states_visited, memory.num_states - 1)
    state_list = memory.state_list.at[state_slot].set(
        jnp.where(new_state, state, memory.state_list[state_slot])
    )
    return VisitedPairs(
        visited=memory.visited.at[state, action].set(True),
        pair_list=pair_list,
        num_pairs=memory.num_pairs + new_pair.astype(jnp.int32),
        state_list=state_list,
        num_states_visited=memory.num_states_visited + new_state.astype(jnp.int32),
    )


def sample_planning_pairs(
    memory: VisitedPairs, seed: Array, counter: Array, untried_actions: bool
) -> tuple[Array, Array]:
    """Pairs to replay: ``(state, action)`` with the shape of ``counter``.

    Dyna-Q (``untried_actions=False``): a uniformly drawn visited pair.
    Dyna-Q+ (``untried_actions=True``): a uniformly drawn visited state and a
    uniformly drawn action (the model says what untried actions do).
    """
    num_actions = memory.num_actions
    if untried_actions:
        i = hashed_index(seed, 2 * counter, memory.num_states_visited)
        state = memory.state_list[i]
        action = hashed_index(seed, 2 * counter + 1, jnp.int32(num_actions))
        return state, action
    flat = memory.pair_list[hashed_index(seed, counter, memory.num_pairs)]
    return flat // num_actions, flat % num_actions


# ---------------------------------------------------------------------------- updates
def q_learning_update(q: Array, transition: Transition, learning_rate, discount) -> Array:
    """One tabular Q-learning update on a real or simulated transition.

    ``Q(s, a) += lr * (r + discount * (1 - done) * max_a' Q(s', a') - Q(s, a))``.

    Args:
      q: ``[S, A]`` action values.
      transition: one :class:`Transition` of int32 states and action, float
        reward, bool ``done`` (True if ``next_state`` is terminal: no bootstrap).
      learning_rate, discount: scalars (may be traced).

    Returns:
      ``[S, A]`` updated action values.
    """
    s, a = transition.state, transition.action
    done = jnp.asarray(transition.done).astype(q.dtype)
    target = transition.reward + discount * (1.0 - done) * jnp.max(q[transition.next_state])
    return q.at[s, a].add(learning_rate * (target - q[s, a]))


def _model_keys(seed: Array, counter: Array, key_words: int, impl) -> Array:
    """Model keys (shape of ``counter``) from the hash: ``key_words`` words each."""
    salt = jnp.arange(key_words, dtype=jnp.uint32)
    words = hashed_bits(seed ^ jnp.uint32(0x5BD1E995), counter[..., None] * key_words + salt)
    return jax.random.wrap_key_data(words, impl=impl)


def _targets(q, model, params, keys, state, action, discount, kappa, last_tried, step):
    step_fn = model.step
    if jnp.ndim(state):
        step_fn = jax.vmap(step_fn, in_axes=(None, 0, 0, 0))
    next_state, reward, done = step_fn(params, keys, state, action)
    reward = jnp.asarray(reward, q.dtype)
    if kappa is not None:
        tau = (step - last_tried[state, action]).astype(jnp.float32)
        reward = reward + kappa * jnp.sqrt(jnp.maximum(tau, 0.0))
    done = (jnp.asarray(done) > 0.5).astype(q.dtype)
    return reward + discount * (1.0 - done) * jnp.max(q[next_state], axis=-1)


def dyna_planning(
    q: Array,
    model: Model,
    params,
    memory: VisitedPairs,
    seed: Array,
    num_updates: int,
    learning_rate: Array | float,
    discount: Array | float,
    kappa: Array | float | None = None,
    last_tried: Array | None = None,
    step: Array | None = None,
    batched: bool = False,
) -> Array:
    """``num_updates`` Q-learning updates on pairs simulated by ``model``.

    Args:
      q: ``[S, A]`` action values.
      model: any :class:`~mbrl_jax.core.types.Model` over int32 states and
        actions (its ``done`` a bool or a probability).
      params: the model's params.
      memory: pairs to draw from, with at least one visited pair.
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
    impl = jax.random.key_impl(jax.random.key(0))
    key_words = jax.random.key_data(jax.random.key(0)).shape[-1]

    if batched:
        counters = jnp.arange(num_updates, dtype=jnp.uint32)
        state, action = sample_planning_pairs(memory, seed, counters, plus)
        keys = _model_keys(seed, counters, key_words, impl)
        target = _targets(q, model, params, keys, state, action, discount, kappa, last_tried, step)
        # A pair drawn k times gets the mean of its k errors, not k times the
        # error: with learning_rate 1 a sum would overshoot. Counting the draws
        # by an [n, n] comparison avoids two [S, A] temporaries.
        flat = state * q.shape[-1] + action
        draws = jnp.sum(flat[:, None] == flat[None, :], axis=1).astype(q.dtype)
        return q.at[state, action].add(learning_rate * (target - q[state, action]) / draws)

    def body(i, q):
        counter = jnp.asarray(i, jnp.uint32)
        state, action = sample_planning_pairs(memory, seed, counter, plus)
        key = _model_keys(seed, counter, key_words, impl)
        target = _targets(q, model, params, key, state, action, discount, kappa, last_tried, step)
        return q.at[state, action].add(learning_rate * (target - q[state, action]))

    return jax.lax.fori_loop(0, num_updates, body, q)
