"""Settings of the probabilistic ensemble (:mod:`mbrl_jax.models.ensemble`)."""

from __future__ import annotations

import dataclasses

from mbrl_jax.core.validation import check_choice, check_range

PROPAGATION_MODES = ("ts1", "tsinf", "expectation")
UNCERTAINTY_KINDS = ("bootstrap", "dropout", "bayesian")


@dataclasses.dataclass(frozen=True)
class EnsembleConfig:
    """Ensemble architecture and training settings (validated on construction).

    Attributes:
      obs_dim: observation size ``D``; ``None`` until an agent fills it in from
        its environment (:meth:`for_env`).
      action_dim: action size ``A`` (continuous) or number of actions (discrete,
        one-hot encoded; set ``discrete_actions=True``); ``None`` likewise.
      discrete_actions: actions are integers in ``[0, action_dim)``.
      ensemble_size: members ``E``.
      num_elites: members with the best validation loss, ``<= E``.
      hidden_size, num_layers: MLP width and depth.
      probabilistic: Gaussian heads (negative log-likelihood) or mean-squared error.
      learn_reward: also predict the reward.
      learn_termination: also predict a termination logit.
      learning_rate, weight_decay: AdamW settings.
      batch_size: minibatch size per member.
      holdout_ratio: share of data kept for validation, in ``[0, 1)``.
      max_abs_value: transitions with any input or target entry beyond this
        magnitude are left out of a fit and counted (``FitInfo.dropped_extreme``),
        so one corrupt row cannot overflow the normaliser's float32 statistics;
        in ``(0, 1e15]``.
      uncertainty: ``"bootstrap"`` (``ensemble_size`` networks, each on its own
        resample), ``"dropout"`` (MC dropout) or ``"bayesian"`` (mean-field
        variational weights); the last two are one network of which
        ``ensemble_size`` weight samples play the members
        (:mod:`mbrl_jax.models.sampled`).
      dropout_rate: MC dropout's rate on every hidden layer, in ``[0, 1)``.
      prior_std: the Bayesian network's prior standard deviation per weight,
        in ``[1e-4, 1e4]``.
      posterior_std_init: its initial posterior standard deviation per weight,
        in ``[1e-6, 10]``.
      kl_weight: the weight of its KL term in the loss per transition (1 is the
        evidence lower bound), >= 0.
    """

    obs_dim: int | None = None
    action_dim: int | None = None
    discrete_actions: bool = False
    ensemble_size: int = 5
    num_elites: int = 5
    hidden_size: int = 200
    num_layers: int = 4
    probabilistic: bool = True
    learn_reward: bool = False
    learn_termination: bool = False
    learning_rate: float = 1e-3
    weight_decay: float = 5e-5
    batch_size: int = 256
    holdout_ratio: float = 0.2
    max_abs_value: float = 1e8
    uncertainty: str = "bootstrap"
    dropout_rate: float = 0.1
    prior_std: float = 1.0
    posterior_std_init: float = 1e-3
    kl_weight: float = 1.0

    def __post_init__(self):
        for name in ("obs_dim", "action_dim"):
            if getattr(self, name) is not None:
                check_range(self, name, low=1)
        for name in ("ensemble_size", "num_elites", "hidden_size", "num_layers", "batch_size"):
            check_range(self, name, low=1)
        if self.num_elites > self.ensemble_size:
            raise ValueError(
                f"EnsembleConfig.num_elites ({self.num_elites}) must be <= ensemble_size "
                f"({self.ensemble_size})"
            )
        check_range(self, "holdout_ratio", low=0.0, high=1.0, high_open=True)
        check_range(self, "learning_rate", low=0.0, low_open=True)
        check_range(self, "weight_decay", low=0.0)
        check_range(self, "max_abs_value", low=0.0, high=1e15, low_open=True)
        check_choice(self, "uncertainty", UNCERTAINTY_KINDS)
        check_range(self, "dropout_rate", low=0.0, high=1.0, high_open=True)
        check_range(self, "prior_std", low=1e-4, high=1e4)
        check_range(self, "posterior_std_init", low=1e-6, high=10.0)
        check_range(self, "kl_weight", low=0.0)

    def for_env(self, env, env_params) -> EnsembleConfig:
        """These settings with ``obs_dim``, ``action_dim`` and ``discrete_actions``
        read off a gymnax environment with a vector observation.

        Raises:
          ValueError: the observation is not a vector.
        """
        space = env.observation_space(env_params)
        if hasattr(space, "n") or len(space.shape) != 1:
            raise ValueError(
                f"env: the ensemble needs a vector observation, got {space!r} "
                f"with shape {getattr(space, 'shape', None)}"
            )
        act = env.action_space(env_params)
        discrete = hasattr(act, "n")
        action_dim = int(act.n) if discrete else int(max(1, *act.shape, 1))
        return dataclasses.replace(
            self, obs_dim=int(space.shape[0]), action_dim=action_dim, discrete_actions=discrete
        )

    @property
    def input_dim(self) -> int:
        return self.obs_dim + self.action_dim

    @property
    def output_dim(self) -> int:
        return self.obs_dim + int(self.learn_reward)
