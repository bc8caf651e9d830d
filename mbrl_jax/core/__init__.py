"""The shared vocabulary of every layer: types, the model contract, rollouts, buffers,
returns, validation, PRNG helpers and :func:`jit`. Imports nothing else of the library."""

from mbrl_jax.core.jit import compiler_options, jit
from mbrl_jax.core.mdp import AnyMDP, SparseTabularMDP, TabularMDP, densify, validate_mdp
from mbrl_jax.core.replay import (
    ReplayBuffer,
    TrajectoryBuffer,
    buffer_add,
    buffer_init,
    buffer_sample,
    trajectory_buffer_add,
    trajectory_buffer_init,
    trajectory_buffer_sample,
)
from mbrl_jax.core.returns import (
    completed_returns,
    cumulative_reward,
    discounted_returns,
    episode_lengths,
    episode_returns,
    first_step_where,
    lambda_returns,
    n_step_bootstrap,
    n_step_targets,
)
from mbrl_jax.core.rollout import Policy, Rollout, rollout
from mbrl_jax.core.types import (
    Array,
    BatchStepFn,
    Model,
    PRNGKey,
    StepFn,
    Transition,
    batch_step,
)
from mbrl_jax.core.validation import check_choice, check_float, check_int, check_range

__all__ = [
    "AnyMDP",
    "Array",
    "BatchStepFn",
    "Model",
    "PRNGKey",
    "Policy",
    "ReplayBuffer",
    "Rollout",
    "SparseTabularMDP",
    "StepFn",
    "TabularMDP",
    "TrajectoryBuffer",
    "Transition",
    "batch_step",
    "buffer_add",
    "buffer_init",
    "buffer_sample",
    "check_choice",
    "check_float",
    "check_int",
    "check_range",
    "compiler_options",
    "completed_returns",
    "cumulative_reward",
    "densify",
    "discounted_returns",
    "episode_lengths",
    "episode_returns",
    "first_step_where",
    "jit",
    "lambda_returns",
    "n_step_bootstrap",
    "n_step_targets",
    "rollout",
    "trajectory_buffer_add",
    "trajectory_buffer_init",
    "trajectory_buffer_sample",
    "validate_mdp",
]
