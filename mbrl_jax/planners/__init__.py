"""Planners, each taking a `core.Model` (DP takes the MDP a tabular model exports): dp, dyna,
prioritized_sweeping, shooting (random/CEM/MPPI/iCEM), search (mctx). The DP functions are
re-exported here."""

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
