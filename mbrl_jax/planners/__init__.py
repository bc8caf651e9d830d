"""Planners: exact dynamic programming (and, in later modules, Dyna updates, MPC, tree search)."""

from mbrl_jax.planners.dp import (
    ValueIterationResult,
    greedy_path_length,
    greedy_policy,
    optimistic_value_iteration,
    pessimistic_value_iteration,
    policy_evaluation,
    policy_evaluation_exact,
    policy_iteration,
    q_from_v,
    robust_value_iteration,
    value_iteration,
)

__all__ = [
    "ValueIterationResult",
    "greedy_path_length",
    "greedy_policy",
    "optimistic_value_iteration",
    "pessimistic_value_iteration",
    "policy_evaluation",
    "policy_evaluation_exact",
    "policy_iteration",
    "q_from_v",
    "robust_value_iteration",
    "value_iteration",
]
