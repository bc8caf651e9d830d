"""Prioritized sweeping (Sutton & Barto, section 8.4) through any tabular model.

The priority queue is a dense ``[S, A]`` array: 0 means "not queued", a
positive entry is the pair's priority. Pushing keeps the larger of the old and
new priority; popping takes the arg-max and zeroes it.

The model is used through ``model.step`` only. At the start of a sweep every
pair's outcome is predicted once (``step`` vmapped over all ``S x A`` pairs;
the model does not change during a sweep, so one prediction per pair serves
every pop): for the last-seen deterministic model that is its own tables,
for a stochastic model one sample per pair. Predecessors of a state ``s`` are
the visited pairs predicted to lead to ``s``. Each pop therefore costs
``O(S A)`` vectorised work (an arg-max and a masked update), which XLA fuses
and which batches over seeds with ``vmap``; there is no pointer-based heap to
keep consistent.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mbrl_jax.core.types import Array, Model, PRNGKey


class Outcomes(NamedTuple):
    """Predicted outcome of every pair: ``next_state [S, A]`` int32, ``reward [S, A]``,
    ``done [S, A]`` float (1 where terminal)."""

    next_state: Array
    reward: Array
    done: Array


def predict_all_pairs(model: Model, params, key: PRNGKey, num_states: int, num_actions: int):
    """:class:`Outcomes` of ``model.step`` for every pair (one key per pair)."""
    states = jnp.repeat(jnp.arange(num_states, dtype=jnp.int32), num_actions)
    actions = jnp.tile(jnp.arange(num_actions, dtype=jnp.int32), num_states)
    keys = jax.random.split(key, num_states * num_actions)
    next_state, reward, done = jax.vmap(model.step, in_axes=(None, 0, 0, 0))(
        params, keys, states, actions
    )
    shape = (num_states, num_actions)
    return Outcomes(
        jnp.asarray(next_state, jnp.int32).reshape(shape),
        jnp.asarray(reward, jnp.float32).reshape(shape),
        (jnp.asarray(done) > 0.5).astype(jnp.float32).reshape(shape),
    )


def td_error_magnitude(q, outcomes: Outcomes, state, action, discount) -> Array:
    """``|r + discount * (1 - done) * max Q(s') - Q(s, a)|`` for pairs under the model."""
    next_state = outcomes.next_state[state, action]
    done = outcomes.done[state, action]
    target = outcomes.reward[state, action] + discount * (1.0 - done) * jnp.max(q[next_state], -1)
    return jnp.abs(target - q[state, action])


def push(priority: Array, state: Array, action: Array, value: Array, theta) -> Array:
    """Queues ``(state, action)`` with ``value`` if ``value > theta`` (keeps the max)."""
    return priority.at[state, action].max(jnp.where(value > theta, value, 0.0))


def sweep(
    q: Array,
    outcomes: Outcomes,
    visited: Array,
    priority: Array,
    max_updates: int,
    learning_rate,
    discount,
    theta,
) -> tuple[Array, Array, Array]:
    """Pops and updates up to ``max_updates`` pairs, queueing their predecessors.

    Args:
      q: ``[S, A]`` action values.
      outcomes: the model's predictions (:func:`predict_all_pairs`).
      visited: ``[S, A]`` bool pairs tried in the real environment (the only
        predecessors considered).
      priority: ``[S, A]`` queue (0 = not queued).
      max_updates: static cap ``n`` on updates.
      learning_rate, discount, theta: scalars (may be traced).

    Returns:
      ``(q, priority, num_updates)`` with ``num_updates`` a ``[]`` int32 ``<= n``.
    """
    num_actions = q.shape[-1]
    not_done = 1.0 - outcomes.done

    def cond(carry):
        _, priority, count = carry
        return (count < max_updates) & (jnp.max(priority) > 0.0)

    def body(carry):
        q, priority, count = carry
        flat = jnp.argmax(priority)
        state, action = flat // num_actions, flat % num_actions
        priority = priority.at[state, action].set(0.0)
        next_state = outcomes.next_state[state, action]
        target = outcomes.reward[state, action] + discount * not_done[state, action] * jnp.max(
            q[next_state]
        )
        q = q.at[state, action].add(learning_rate * (target - q[state, action]))
        # Every visited pair predicted to lead into `state` gets its error re-queued.
        # They all bootstrap from the same max Q(state), so the errors are
        # elementwise over [S, A], with no gather.
        leads_here = visited & (outcomes.next_state == state)
        pred_target = outcomes.reward + discount * not_done * jnp.max(q[state])
        errors = jnp.abs(pred_target - q)
        new_priority = jnp.where(leads_here & (errors > theta), errors, 0.0)
        return q, jnp.maximum(priority, new_priority), count + 1

    return jax.lax.while_loop(cond, body, (q, priority, jnp.int32(0)))
