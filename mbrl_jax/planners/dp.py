"""Exact dynamic programming on finite MDPs.

Every function takes one (unbatched) MDP, dense or sparse, and is pure, so a
batch of MDPs or of discount factors is a ``jax.vmap`` away::

    vi = jax.vmap(value_iteration, in_axes=(None, 0))(mdp, jnp.array([0.9, 0.95]))

``discount`` may be a traced value; when it is concrete it is checked to lie
in ``[0, 1)``. ``tolerance`` and ``max_iterations`` are Python numbers.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mbrl_jax.core.mdp import AnyMDP, SparseTabularMDP, TabularMDP, densify, validate_mdp
from mbrl_jax.core.types import Array


class ValueIterationResult(NamedTuple):
    """Result of value or policy iteration.

    Attributes:
      values: ``[S]`` state values (zero at terminal states).
      q_values: ``[S, A]`` action values.
      policy: ``[S]`` int32 greedy actions.
      iterations: ``[]`` int32 iterations run.
      residual: ``[]`` last sup-norm change of the values (value iteration), or
        the number of policy changes in the last sweep (policy iteration).
    """

    values: Array
    q_values: Array
    policy: Array
    iterations: Array
    residual: Array


def expected_next_value(mdp: AnyMDP, values: Array) -> Array:
    """``sum_s' P(s' | s, a) V(s')`` for every pair.

    Args:
      mdp: dense or sparse MDP (unbatched).
      values: ``[S]`` state values.

    Returns:
      ``[S, A]`` expected next-state values.
    """
    if isinstance(mdp, SparseTabularMDP):
        return jnp.sum(mdp.prob * values[mdp.next_state], axis=-1)
    return jnp.einsum("sat,t->sa", mdp.transition, values)


def check_discount(discount) -> None:
    """Raises ``ValueError`` if a concrete discount lies outside ``[0, 1)``."""
    if isinstance(discount, jax.core.Tracer):
        return
    d = np.asarray(discount, dtype=float)
    if not np.all((d >= 0.0) & (d < 1.0)):
        raise ValueError(f"discount must be in [0, 1), got {discount}")


def _check_iterations(max_iterations: int, tolerance: float) -> None:
    if int(max_iterations) < 1:
        raise ValueError(f"max_iterations must be >= 1, got {max_iterations}")
    if not tolerance > 0.0:
        raise ValueError(f"tolerance must be > 0, got {tolerance}")


def q_from_v(mdp: AnyMDP, values: Array, discount: float | Array) -> Array:
    """``Q(s, a) = R(s, a) + discount * E[V(s')]``.

    Args:
      mdp: the MDP.
      values: ``[S]`` state values.
      discount: scalar discount factor.

    Returns:
      ``[S, A]`` action values.
    """
    validate_mdp(mdp)
    check_discount(discount)
    if jnp.shape(values) != (mdp.num_states,):
        raise ValueError(
            f"values must have shape [S] = ({mdp.num_states},), got {jnp.shape(values)}"
        )
    return mdp.reward + discount * expected_next_value(mdp, values)


def greedy_policy(q_values: Array) -> Array:
    """``[S]`` int32 argmax over actions of ``[S, A]`` action values (first on ties)."""
    return jnp.argmax(q_values, axis=-1).astype(jnp.int32)


def _bellman_optimality(mdp: AnyMDP, values: Array, discount) -> tuple[Array, Array]:
    q = mdp.reward + discount * expected_next_value(mdp, values)
    return jnp.where(mdp.terminal, 0.0, jnp.max(q, axis=-1)), q


def _iterate_to_tolerance(backup, num_states: int, tolerance: float, max_iterations: int):
    """Runs ``values <- backup(values)`` until the sup-norm change is below ``tolerance``."""

    def cond(carry):
        _, iteration, residual = carry
        return (residual > tolerance) & (iteration < max_iterations)

    def body(carry):
        values, iteration, _ = carry
        new_values = backup(values)
        return new_values, iteration + 1, jnp.max(jnp.abs(new_values - values))

    init = (jnp.zeros(num_states, jnp.float32), jnp.int32(0), jnp.float32(jnp.inf))
    return jax.lax.while_loop(cond, body, init)


def value_iteration(
    mdp: AnyMDP,
    discount: float | Array,
    tolerance: float = 1e-6,
    max_iterations: int = 10_000,
) -> ValueIterationResult:
    """Value iteration (``lax.while_loop``) to a sup-norm tolerance or an iteration cap.

    Args:
      mdp: the MDP (dense or sparse).
      discount: scalar in ``[0, 1)``.
      tolerance: stop when ``max_s |V_{k+1}(s) - V_k(s)| <= tolerance``.
      max_iterations: iteration cap.

    Returns:
      :class:`ValueIterationResult`.
    """
    validate_mdp(mdp)
    check_discount(discount)
    _check_iterations(max_iterations, tolerance)
    values, iterations, residual = _iterate_to_tolerance(
        lambda v: _bellman_optimality(mdp, v, discount)[0],
        mdp.num_states,
        tolerance,
        max_iterations,
    )
    q = mdp.reward + discount * expected_next_value(mdp, values)
    return ValueIterationResult(values, q, greedy_policy(q), iterations, residual)


def _check_policy(mdp: AnyMDP, policy: Array) -> None:
    if jnp.shape(policy) != (mdp.num_states,):
        raise ValueError(
            f"policy must have shape [S] = ({mdp.num_states},), got {jnp.shape(policy)}"
        )


def _policy_reward_transition(mdp: AnyMDP, policy: Array):
    idx = jnp.arange(mdp.num_states)
    return mdp.reward[idx, policy], idx


def policy_evaluation(
    mdp: AnyMDP,
    policy: Array,
    discount: float | Array,
    tolerance: float = 1e-6,
    max_iterations: int = 10_000,
) -> Array:
    """Iterative evaluation of a deterministic policy.

    Args:
      mdp: the MDP.
      policy: ``[S]`` int actions.
      discount: scalar in ``[0, 1)``.

    Returns:
      ``[S]`` values ``V^pi``.
    """
    validate_mdp(mdp)
    check_discount(discount)
    _check_iterations(max_iterations, tolerance)
    _check_policy(mdp, policy)
    reward_pi, idx = _policy_reward_transition(mdp, policy)

    def backup(values):
        next_values = expected_next_value(mdp, values)[idx, policy]
        return jnp.where(mdp.terminal, 0.0, reward_pi + discount * next_values)

    values, _, _ = _iterate_to_tolerance(backup, mdp.num_states, tolerance, max_iterations)
    return values


def policy_evaluation_exact(mdp: AnyMDP, policy: Array, discount: float | Array) -> Array:
    """Exact evaluation of a deterministic policy by a linear solve.

    Solves ``(I - discount * P_pi) V = R_pi`` with terminal rows fixed to zero.
    Dense ``O(S^3)``: meant for small and medium MDPs.

    Args:
      mdp: the MDP.
      policy: ``[S]`` int actions.
      discount: scalar in ``[0, 1)``.

    Returns:
      ``[S]`` values ``V^pi``.
    """
    validate_mdp(mdp)
    check_discount(discount)
    _check_policy(mdp, policy)
    dense = densify(mdp)
    reward_pi, idx = _policy_reward_transition(dense, policy)
    live = ~dense.terminal
    transition_pi = dense.transition[idx, policy] * live[:, None]
    reward_pi = jnp.where(live, reward_pi, 0.0)
    system = jnp.eye(dense.num_states) - discount * transition_pi
    return jnp.linalg.solve(system, reward_pi)


def policy_iteration(
    mdp: AnyMDP,
    discount: float | Array,
    max_iterations: int = 1_000,
    exact: bool = True,
    tolerance: float = 1e-8,
) -> ValueIterationResult:
    """Howard's policy iteration until the greedy policy stops changing.

    Args:
      mdp: the MDP.
      discount: scalar in ``[0, 1)``.
      max_iterations: cap on improvement steps.
      exact: evaluate each policy by linear solve (else iteratively to ``tolerance``).
      tolerance: improvement only switches action when it gains more than this
        (avoids cycling between equally good actions) and iterative evaluation
        stops at it.

    Returns:
      :class:`ValueIterationResult` (``residual`` = policy changes in the last sweep).
    """
    validate_mdp(mdp)
    check_discount(discount)
    _check_iterations(max_iterations, tolerance)

    def evaluate(policy):
        if exact:
            return policy_evaluation_exact(mdp, policy, discount)
        return policy_evaluation(mdp, policy, discount, tolerance=tolerance)

    def improve(policy, values):
        q = mdp.reward + discount * expected_next_value(mdp, values)
        best = greedy_policy(q)
        current = jnp.take_along_axis(q, policy[:, None], axis=-1)[:, 0]
        better = jnp.max(q, axis=-1) > current + tolerance
        return jnp.where(better, best, policy), q

    def cond(carry):
        _, _, _, iteration, changes = carry
        return (changes > 0) & (iteration < max_iterations)

    def body(carry):
        policy, _, _, iteration, _ = carry
        values = evaluate(policy)
        new_policy, q = improve(policy, values)
        changes = jnp.sum(new_policy != policy)
        return new_policy, values, q, iteration + 1, changes

    policy0 = jnp.zeros(mdp.num_states, jnp.int32)
    init = (
        policy0,
        jnp.zeros(mdp.num_states, jnp.float32),
        jnp.zeros((mdp.num_states, mdp.num_actions), jnp.float32),
        jnp.int32(0),
        jnp.int32(1),
    )
    policy, values, q, iterations, changes = jax.lax.while_loop(cond, body, init)
    return ValueIterationResult(values, q, policy, iterations, changes.astype(jnp.float32))


def robust_value_iteration(
    ensemble_mdp: TabularMDP,
    discount: float | Array,
    beta: float | Array,
    tolerance: float = 1e-6,
    max_iterations: int = 10_000,
) -> ValueIterationResult:
    """Value iteration under model uncertainty from an ensemble of MDPs.

    Each member ``e`` backs up ``Q_e(s, a) = R_e(s, a) + discount * sum_s' P_e(s'|s,a) V(s')``
    (the expectation over its next-state distribution); the backup used is
    ``mean_e Q_e - beta * std_e Q_e``. ``beta > 0`` is pessimistic, ``beta < 0``
    optimistic, ``beta = 0`` the ensemble-mean model. Prefer
    :func:`pessimistic_value_iteration` / :func:`optimistic_value_iteration`.

    Args:
      ensemble_mdp: MDP whose arrays carry a leading member axis ``[E, ...]``
        (e.g. :func:`mbrl_jax.models.tabular.ensemble_mdps`); ``start`` and
        ``terminal`` are taken from member 0.
      discount: scalar in ``[0, 1)``.
      beta: scalar weight of the standard deviation.
    """
    validate_mdp(ensemble_mdp)
    check_discount(discount)
    _check_iterations(max_iterations, tolerance)
    if jnp.ndim(ensemble_mdp.reward) != 3:
        raise ValueError(
            f"ensemble_mdp.reward must be [E, S, A], got shape {jnp.shape(ensemble_mdp.reward)}"
        )
    terminal = ensemble_mdp.terminal[0]
    num_states = ensemble_mdp.reward.shape[1]

    def member_q(values):
        return jax.vmap(lambda m: m.reward + discount * expected_next_value(m, values))(
            ensemble_mdp
        )

    def robust_q(values):
        q = member_q(values)
        return jnp.mean(q, axis=0) - beta * jnp.std(q, axis=0)

    def backup(values):
        return jnp.where(terminal, 0.0, jnp.max(robust_q(values), axis=-1))

    values, iterations, residual = _iterate_to_tolerance(
        backup, num_states, tolerance, max_iterations
    )
    q = robust_q(values)
    return ValueIterationResult(values, q, greedy_policy(q), iterations, residual)


def _check_beta(beta) -> None:
    if isinstance(beta, jax.core.Tracer):
        return
    if np.any(np.asarray(beta, dtype=float) < 0.0):
        raise ValueError(f"beta must be >= 0, got {beta}")


def pessimistic_value_iteration(ensemble_mdp, discount, beta, **kwargs) -> ValueIterationResult:
    """Robust value iteration with backup ``mean - beta * std`` (``beta >= 0``)."""
    _check_beta(beta)
    return robust_value_iteration(ensemble_mdp, discount, beta, **kwargs)


def optimistic_value_iteration(ensemble_mdp, discount, beta, **kwargs) -> ValueIterationResult:
    """Robust value iteration with backup ``mean + beta * std`` (``beta >= 0``)."""
    _check_beta(beta)
    return robust_value_iteration(ensemble_mdp, discount, -beta, **kwargs)


def greedy_path_length(mdp: AnyMDP, policy: Array, max_length: int = 10_000) -> Array:
    """Steps the greedy policy takes from ``mdp.start`` to a terminal state.

    Follows the most likely successor at each step (exact for deterministic
    mazes).

    Args:
      mdp: the MDP.
      policy: ``[S]`` int actions.
      max_length: give up after this many steps.

    Returns:
      ``[]`` int32 number of steps, or ``-1`` if no terminal state is reached
      within ``max_length`` steps.
    """
    validate_mdp(mdp)
    states = jnp.arange(mdp.num_states)
    if isinstance(mdp, TabularMDP):
        likely_next = jnp.argmax(mdp.transition[states, policy], axis=-1)
    else:
        choice = jnp.argmax(mdp.prob[states, policy], axis=-1)
        likely_next = mdp.next_state[states, policy, choice]

    def cond(carry):
        state, steps = carry
        return (~mdp.terminal[state]) & (steps < max_length)

    def body(carry):
        state, steps = carry
        return likely_next[state], steps + 1

    state, steps = jax.lax.while_loop(cond, body, (jnp.asarray(mdp.start, jnp.int32), jnp.int32(0)))
    return jnp.where(mdp.terminal[state], steps, -1)
