"""Models: every one is a :class:`~mbrl_jax.core.types.Model` built by a factory.

=====================================  ==========================================
factory                                 states
=====================================  ==========================================
:func:`count_model`                     int32 indices (maximum-likelihood counts)
:func:`deterministic_model`             int32 indices (last seen, Dyna-Q's)
:func:`tabular_ensemble_model`          int32 indices (bootstrap count ensemble)
:func:`ensemble_model`                  observation vectors (probabilistic ensemble)
:func:`muzero_model`                    latent vectors (MuZero's dynamics)
:func:`env_model`                       the environment's own states
=====================================  ==========================================

:func:`with_task` and :func:`indexed_states` build models from models.
"""

from mbrl_jax.models.ensemble import (
    PROPAGATION_MODES,
    Ensemble,
    EnsembleConfig,
    EnsembleState,
    FitInfo,
    ensemble_model,
)
from mbrl_jax.models.latent import muzero_evaluator, muzero_model
from mbrl_jax.models.networks import MLP, GaussianMLP, MuZeroNet, PolicyValueNet
from mbrl_jax.models.tabular import (
    CountModel,
    DeterministicModel,
    count_model,
    count_model_init,
    count_model_mdp,
    count_model_step,
    count_model_update,
    deterministic_model,
    deterministic_model_init,
    deterministic_model_mdp,
    deterministic_model_step,
    deterministic_model_update,
    ensemble_init,
    ensemble_mdps,
    ensemble_stats,
    ensemble_update,
    tabular_ensemble_model,
    tabular_ensemble_step,
    visit_counts,
)
from mbrl_jax.models.true_env import env_model, env_model_step
from mbrl_jax.models.wrappers import indexed_states, with_task

__all__ = [
    "MLP",
    "PROPAGATION_MODES",
    "CountModel",
    "DeterministicModel",
    "Ensemble",
    "EnsembleConfig",
    "EnsembleState",
    "FitInfo",
    "GaussianMLP",
    "MuZeroNet",
    "PolicyValueNet",
    "count_model",
    "count_model_init",
    "count_model_mdp",
    "count_model_step",
    "count_model_update",
    "deterministic_model",
    "deterministic_model_init",
    "deterministic_model_mdp",
    "deterministic_model_step",
    "deterministic_model_update",
    "ensemble_init",
    "ensemble_mdps",
    "ensemble_model",
    "ensemble_stats",
    "ensemble_update",
    "env_model",
    "env_model_step",
    "indexed_states",
    "muzero_evaluator",
    "muzero_model",
    "tabular_ensemble_model",
    "tabular_ensemble_step",
    "visit_counts",
    "with_task",
]
