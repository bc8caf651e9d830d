"""Prioritized sweeping (Sutton & Barto, section 8.4) on a last-seen deterministic model.

The priority queue is a dense ``[S, A]`` array: 0 means "not queued", a
positive entry is the pair's priority. Pushing keeps the larger of the old and
new priority; popping takes the arg-max and zeroes it. Predecessors of a state
``s`` are the visited pairs the model predicts to lead to ``s``
(``visited & (next_state == s)``). Each pop therefore costs ``O(S A)``
vectorised work (an arg-max and a masked update), which XLA fuses and which
batches over seeds with ``vmap``; there is no pointer-based heap to keep
consistent.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mbrl_jax.models.tabular import DeterministicModel
from mbrl_jax.types import Array


def td_error_magnitude(q, model, state, action, discount) -> Array:
    """``|r + discount * (1 - done) * max Q(s') - Q(s, a)|`` for pairs under the model."""
    next_state = model.next_state[state, action]
    done = model.done[state, action].astype(q.dtype)
    target = model.reward[state, action] + discount * (1.0 - done) * jnp.max(q[next_state], -1)
    return jnp.abs(target - q[state, action])


def push(priority: Array, state: Array, action: Array, value: Array, theta) -> Array:
    """Queues ``(state, action)`` with ``value`` if ``value > theta`` (keeps the max)."""
    return priority.at[state, action].max(jnp.where(value > theta, value, 0.0))


def sweep(
    q: Array,
    model: DeterministicModel,
    priority: Array,
    max_updates: int,
    learning_rate,
    discount,
    theta,
) -> tuple[Array, Array, Array]:
    """Pops and updates up to ``max_updates`` pairs, queueing their predecessors.

    Args:
      q: ``[S, A]`` action values.
      model: last-seen model.
      priority: ``[S, A]`` queue (0 = not queued).
      max_updates: static cap ``n`` on updates.
      learning_rate, discount, theta: scalars (may be traced).

    Returns:
      ``(q, priority, num_updates)`` with ``num_updates`` a ``[]`` int32 ``<= n``.
    """
    num_actions = q.shape[-1]

    def cond(carry):
        _, priority, count = carry
        return (count < max_updates) & (jnp.max(priority) > 0.0)

    def body(carry):
        q, priority, count = carry
        flat = jnp.argmax(priority)
        state, action = flat // num_actions, flat % num_actions
        priority = priority.at[state, action].set(0.0)
        next_state = model.next_state[state, action]
        done = model.done[state, action].astype(q.dtype)
        target = model.reward[state, action] + discount * (1.0 - done) * jnp.max(q[next_state])
        q = q.at[state, action].add(learning_rate * (target - q[state, action]))
        # Every visited pair predicted to lead into `state` gets its error re-queued.
        # They all bootstrap from the same max Q(state), so the errors are
        # elementwise over [S, A], with no gather.
        leads_here = model.visited & (model.next_state == state)
        value = jnp.max(q[state])
        pred_target = model.reward + discount * (1.0 - model.done.astype(q.dtype)) * value
        errors = jnp.abs(pred_target - q)
        new_priority = jnp.where(leads_here & (errors > theta), errors, 0.0)
        return q, jnp.maximum(priority, new_priority), count + 1

    return jax.lax.while_loop(cond, body, (q, priority, jnp.int32(0)))
