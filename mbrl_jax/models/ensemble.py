"""Probabilistic neural-network ensembles for dynamics (PETS), in flax linen.

Members share one flax module; their params are stacked on a leading member
axis ``[E, ...]`` by ``jax.vmap(module.init)`` and applied with
``jax.vmap(module.apply)`` — never a Python list of members. Linen rather than
nnx: linen params are plain pytrees, which is what vmapping over members,
carrying params through ``lax.scan`` and vmapping whole training runs over
seeds want; nnx's mutable objects would have to be split back into pytrees
for each of those.

The network maps normalised ``(obs, action)`` to the normalised change of the
observation (and, optionally, the reward): a Gaussian with mean and log
variance (``probabilistic=True``; log variance softly bounded by learned
``max_logvar``/``min_logvar``) or a point estimate (mean-squared error), plus
an optional termination logit kept apart from time-limit truncation.

Shape letters: E members, N items, D observation size, A action size.
"""

from __future__ import annotations

from typing import NamedTuple

import distrax
import jax
import jax.numpy as jnp
import optax
from flax import struct

from mbrl_jax.core.replay import ReplayBuffer
from mbrl_jax.core.types import Array, Model, PRNGKey
from mbrl_jax.models.ensemble_config import PROPAGATION_MODES, UNCERTAINTY_KINDS, EnsembleConfig
from mbrl_jax.models.networks import GaussianMLP, silu, soft_bound

__all__ = [
    "PROPAGATION_MODES",
    "UNCERTAINTY_KINDS",
    "Ensemble",
    "EnsembleConfig",
    "EnsembleState",
    "FitInfo",
    "Normalizer",
    "ensemble_model",
    "make_ensemble",
]


@struct.dataclass
class Normalizer:
    """Input and output statistics fitted from data: ``[input_dim]`` and ``[output_dim]``."""

    in_mean: Array
    in_std: Array
    out_mean: Array
    out_std: Array


@struct.dataclass
class EnsembleState:
    """Everything an ensemble carries.

    Attributes:
      params: flax params with a leading member axis ``[E, ...]``.
      opt_state: AdamW state for ``params``.
      normalizer: :class:`Normalizer`.
      elites: ``[num_elites]`` int32 member indices, best validation loss first.
    """

    params: dict
    opt_state: optax.OptState
    normalizer: Normalizer
    elites: Array


class FitInfo(NamedTuple):
    """Diagnostics of :meth:`Ensemble.fit`.

    Attributes:
      train_loss: ``[num_epochs]`` mean training loss per epoch (over members).
      val_loss: ``[E]`` validation loss per member after training.
      val_mse: ``[E]`` validation mean-squared error (normalised targets).
      gradient_steps: ``[]`` int32.
      dropped_nan: ``[]`` int32 transitions left out for holding NaN or inf.
      dropped_extreme: ``[]`` int32 finite transitions left out for an entry
        beyond ``EnsembleConfig.max_abs_value``.
      num_used: ``[]`` int32 transitions the fit used. With none (an empty or
        all-invalid buffer) the parameters are left as they were and every loss
        is NaN, so the fit cannot pass for a good one.
    """

    train_loss: Array
    val_loss: Array
    val_mse: Array
    gradient_steps: Array
    dropped_nan: Array
    dropped_extreme: Array
    num_used: Array


class Ensemble:
    """A probabilistic ensemble as pure functions over :class:`EnsembleState`.

    The object holds only the static config and the flax module.
    """

    def __init__(self, config: EnsembleConfig):
        if config.obs_dim is None or config.action_dim is None:
            raise ValueError(
                "EnsembleConfig.obs_dim and action_dim must be set to build an Ensemble "
                "(EnsembleConfig.for_env(env, env_params) reads them off an environment)"
            )
        self.config = config
        self.network = GaussianMLP(
            config.hidden_size, config.num_layers, config.output_dim, config.learn_termination
        )
        self.optimizer = optax.adamw(config.learning_rate, weight_decay=config.weight_decay)

    # ------------------------------------------------------------------ basics
    def encode_action(self, action: Array) -> Array:
        """``[..., A]`` float input encoding (one-hot for discrete actions)."""
        if self.config.discrete_actions:
            return jax.nn.one_hot(action, self.config.action_dim, dtype=jnp.float32)
        return jnp.asarray(action, jnp.float32)

    def init(self, key: PRNGKey) -> EnsembleState:
        """Fresh members (independent initialisations) and identity normalisation."""
        c = self.config
        keys = jax.random.split(key, c.ensemble_size)
        params = jax.vmap(self.network.init, in_axes=(0, None))(keys, jnp.zeros((1, c.input_dim)))
        normalizer = Normalizer(
            jnp.zeros(c.input_dim),
            jnp.ones(c.input_dim),
            jnp.zeros(c.output_dim),
            jnp.ones(c.output_dim),
        )
        return EnsembleState(
            params=params,
            opt_state=self.optimizer.init(params),
            normalizer=normalizer,
            elites=jnp.arange(c.num_elites, dtype=jnp.int32),
        )

    def check_shapes(self, obs: Array, action: Array) -> None:
        """Raises ``ValueError`` unless ``obs [..., D]`` and ``action`` (``[..., A]``
        continuous, ``[...]`` integer discrete) match the config and each other.
        Shapes are static, so this runs once, at trace time."""
        c = self.config
        obs_shape, action_shape = jnp.shape(obs), jnp.shape(action)
        if not obs_shape or obs_shape[-1] != c.obs_dim:
            raise ValueError(
                f"Ensemble: observations must have shape [..., obs_dim={c.obs_dim}], "
                f"got {obs_shape}"
            )
        if c.discrete_actions:
            expected = obs_shape[:-1]
            ok = action_shape == expected and jnp.issubdtype(jnp.result_type(action), jnp.integer)
            what = f"integer actions of shape {expected}"
        else:
            expected = (*obs_shape[:-1], c.action_dim)
            ok = action_shape == expected
            what = f"actions of shape {expected} (action_dim={c.action_dim})"
        if not ok:
            raise ValueError(
                f"Ensemble: observations {obs_shape} need {what}, got "
                f"{jnp.result_type(action)} {action_shape}"
            )

    def _inputs(self, state: EnsembleState, obs: Array, action: Array) -> Array:
        self.check_shapes(obs, action)
        x = jnp.concatenate([obs, self.encode_action(action)], axis=-1)
        return (x - state.normalizer.in_mean) / state.normalizer.in_std

    def apply_members(self, params, x: Array):
        """``x [E, N, input]`` normalised -> ``(mean, logvar, term_logit)`` ``[E, N, ...]``."""
        return jax.vmap(self.network.apply)(params, x)

    def apply_members_features_major(self, params, x: Array):
        """:meth:`apply_members` computed with features on the middle axis.

        The same network and the same result, but every layer is
        ``kernel.T @ h`` on ``h [E, features, N]``: a long ``N`` as the
        matrices' last axis is the layout the CPU's matrix kernels run
        fastest for these narrow (about 200-wide) layers; planning, which
        evaluates thousands of particles per member, spends nearly all its
        time here.
        """
        c = self.config
        p = params["params"]

        def dense(i, h):
            layer = p[f"Dense_{i}"]
            return jnp.einsum("eio,ein->eon", layer["kernel"], h) + layer["bias"][..., None]

        h = x.transpose(0, 2, 1)
        for i in range(c.num_layers):
            h = silu(dense(i, h))
        mean = dense(c.num_layers, h).transpose(0, 2, 1)
        logvar = dense(c.num_layers + 1, h).transpose(0, 2, 1)
        logvar = soft_bound(logvar, p["max_logvar"][:, None], p["min_logvar"][:, None])
        if c.learn_termination:
            term = dense(c.num_layers + 2, h)[:, 0]
        else:
            term = jnp.zeros(x.shape[:-1])
        return mean, logvar, term

    def predict(self, state: EnsembleState, obs: Array, action: Array) -> dict:
        """Moments of the next observation (and reward) for a batch.

        Args:
          state: ensemble state.
          obs: ``[N, D]``.
          action: ``[N, A]`` (continuous) or ``[N]`` (discrete).

        Returns:
          ``{"mean": [N, out], "aleatoric_var": [N, out], "epistemic_var": [N, out],
          "member_mean": [E, N, out], "termination_prob": [N]}`` in the original
          units; ``out = D (+1 with the reward)``; the first ``D`` entries are
          next observations (not changes).
        """
        x = self._inputs(state, obs, action)
        e = self.config.ensemble_size
        mean, logvar, term = self.apply_members(state.params, jnp.broadcast_to(x, (e, *x.shape)))
        norm = state.normalizer
        member_mean = mean * norm.out_std + norm.out_mean
        base = jnp.zeros_like(member_mean).at[..., : self.config.obs_dim].set(obs)
        member_mean = member_mean + base
        # Mean-squared-error heads model no noise: their aleatoric variance is 0
        # (the untrained log-variance head must not pass for one).
        if self.config.probabilistic:
            variance = jnp.exp(logvar) * norm.out_std**2
        else:
            variance = jnp.zeros_like(member_mean)
        return {
            "mean": member_mean.mean(0),
            "aleatoric_var": variance.mean(0),
            "epistemic_var": member_mean.var(0),
            "member_mean": member_mean,
            "termination_prob": jax.nn.sigmoid(term).mean(0),
        }

    # --------------------------------------------------------------- planning
    def step_particles(
        self, state: EnsembleState, key: PRNGKey, obs: Array, action: Array, mode: str = "tsinf"
    ) -> tuple[Array, Array, Array]:
        """Steps ``N`` particles; the batch step function planners use.

        Propagation (PETS): ``"tsinf"`` particle ``i`` always follows member
        ``i mod E``; ``"ts1"`` members are re-drawn (a random permutation of the
        particles over members) at every step; ``"expectation"`` every particle
        moves by the mean over members, without sampling. ``N`` a multiple of
        ``E`` runs fastest (each member predicts only its own particles).

        Args:
          state: ensemble state.
          key: PRNG key (sampling and TS1 shuffling).
          obs: ``[N, D]``; action: ``[N, A]`` or ``[N]``.
          mode: one of :data:`PROPAGATION_MODES`.

        Returns:
          ``(next_obs [N, D], reward [N], termination_prob [N])``; the reward is
          zero unless ``learn_reward``.
        """
        c = self.config
        e, n = c.ensemble_size, obs.shape[0]
        x = self._inputs(state, obs, action)
        norm = state.normalizer
        sample_key, perm_key = jax.random.split(key)
        if mode == "expectation":
            mean, logvar, term = self.apply_members_features_major(
                state.params, jnp.broadcast_to(x, (e, *x.shape))
            )
            out, term = mean.mean(0), term.mean(0)
        elif mode in ("tsinf", "ts1") and n % e == 0:
            if mode == "ts1":
                order = jax.random.permutation(perm_key, n)
                x = x[order]
            grouped = x.reshape(n // e, e, -1).transpose(1, 0, 2)  # [E, N/E, in]
            mean, logvar, term = self.apply_members_features_major(state.params, grouped)
            if c.probabilistic:
                mean = distrax.Normal(mean, jnp.exp(0.5 * logvar)).sample(seed=sample_key)
            out = mean.transpose(1, 0, 2).reshape(n, -1)
            term = term.transpose(1, 0).reshape(n)
            if mode == "ts1":  # back to the particles' own order
                out = jnp.zeros_like(out).at[order].set(out)
                term = jnp.zeros_like(term).at[order].set(term)
        elif mode in ("tsinf", "ts1"):
            # A batch that does not split evenly over the members (one search
            # root, say): every member predicts every item and each item keeps
            # its own member's prediction -- ``i mod E`` (TSinf) or a uniform
            # draw (TS1). E times the work of the even case, same distribution.
            mean, logvar, term = self.apply_members_features_major(
                state.params, jnp.broadcast_to(x, (e, *x.shape))
            )
            if mode == "ts1":
                member = jax.random.randint(perm_key, (n,), 0, e)
            else:
                member = jnp.arange(n) % e
            pick = lambda v: jnp.take_along_axis(  # noqa: E731
                v, member.reshape(1, n, *([1] * (v.ndim - 2))), axis=0
            )[0]
            mean, logvar, term = pick(mean), pick(logvar), pick(term)
            if c.probabilistic:
                mean = distrax.Normal(mean, jnp.exp(0.5 * logvar)).sample(seed=sample_key)
            out = mean
        else:
            raise ValueError(f"propagation mode must be one of {PROPAGATION_MODES}, got {mode!r}")
        out = out * norm.out_std + norm.out_mean
        next_obs = obs + out[:, : c.obs_dim]
        reward = out[:, c.obs_dim] if c.learn_reward else jnp.zeros(n)
        return next_obs, reward, jax.nn.sigmoid(term) if c.learn_termination else jnp.zeros(n)

    # ---------------------------------------------------------------- training
    def member_loss(self, params, x, y, done, weight):
        """Loss of one member on a minibatch: ``x [B, in]``, ``y [B, out]`` normalised."""
        outputs = self.network.apply(params, x)
        return self.output_loss(params["params"], outputs, y, done, weight)

    def output_loss(self, p, outputs, y, done, weight):
        """Loss of one network's ``outputs = (mean, logvar, term) [B, ...]``;
        ``p`` is its ``params["params"]`` (for the log-variance bounds' penalty)."""
        mean, logvar, term = outputs
        if self.config.probabilistic:
            nll = -distrax.Normal(mean, jnp.exp(0.5 * logvar)).log_prob(y).mean(-1)
            bound = 0.01 * (p["max_logvar"].sum() - p["min_logvar"].sum())
        else:
            nll, bound = jnp.mean((mean - y) ** 2, axis=-1), 0.0
        if self.config.learn_termination:
            nll = nll + optax.sigmoid_binary_cross_entropy(term, done.astype(jnp.float32))
        return jnp.sum(nll * weight) / jnp.maximum(jnp.sum(weight), 1.0) + bound

    # What :func:`~mbrl_jax.models.ensemble_fit.fit_ensemble` trains, and how.
    # The bootstrap ensemble trains its ``E`` members, each on its own resample;
    # the sampled models (:mod:`mbrl_jax.models.sampled`) override these.
    bootstrap = True

    def num_trained(self) -> int:
        """Networks trained side by side (the leading axis of :meth:`trainable`)."""
        return self.config.ensemble_size

    def trainable(self, state):
        """The parameters the optimiser updates."""
        return state.params

    def train_loss(self, params, key, x, y, done, weight, num_train):
        """Summed loss of the trained networks on ``x [E, B, in]``, ``y [E, B, out]``.

        ``key`` and ``num_train`` (transitions in the training set) are unused
        here; dropout and the Bayesian network need them."""
        del key, num_train
        return jnp.sum(jax.vmap(self.member_loss)(params, x, y, done, weight))

    def trained_state(self, key, state, params, opt_state, normalizer):
        """The state after training (elites are set by the caller)."""
        del key
        return EnsembleState(params, opt_state, normalizer, state.elites)

    def step(
        self, state: EnsembleState, key: PRNGKey, obs: Array, action: Array, mode: str = "ts1"
    ) -> tuple[Array, Array, Array]:
        """Steps ONE state: ``obs [D]``, ``action [A]`` or ``[]``.

        ``"ts1"``/``"tsinf"``: a uniformly drawn member's sampled prediction
        (for one state the two are the same; TSinf's fixed member per particle
        exists only across a batch, see :meth:`step_particles`);
        ``"expectation"``: the members' mean.

        Returns:
          ``(next_obs [D], reward [], termination_prob [])``.
        """
        next_obs, reward, term = self.step_particles(state, key, obs[None], action[None], mode)
        return next_obs[0], reward[0], term[0]

    def fit(
        self, key: PRNGKey, state: EnsembleState, buffer: ReplayBuffer, num_epochs: int
    ) -> tuple[EnsembleState, FitInfo]:
        """Trains every member on its own bootstrap resample of the buffer.

        See :func:`mbrl_jax.models.ensemble_fit.fit_ensemble`.
        """
        from mbrl_jax.models.ensemble_fit import fit_ensemble

        return fit_ensemble(self, key, state, buffer, num_epochs)


def make_ensemble(config: EnsembleConfig) -> Ensemble:
    """The model ``config.uncertainty`` names: the bootstrap :class:`Ensemble`,
    or MC dropout / the Bayesian MLP
    (:class:`~mbrl_jax.models.sampled.SampledEnsemble`), all with the same
    methods (``init``, ``predict``, ``step_particles``, ``fit``)."""
    if config.uncertainty == "bootstrap":
        return Ensemble(config)
    from mbrl_jax.models.sampled import SampledEnsemble

    return SampledEnsemble(config)


def ensemble_model(ensemble: Ensemble, propagation: str = "tsinf", num_epochs: int = 50) -> Model:
    """The probabilistic ensemble as a :class:`~mbrl_jax.core.types.Model`.

    Args:
      ensemble: the :class:`Ensemble`.
      propagation: how a batch of particles moves (:data:`PROPAGATION_MODES`).
      num_epochs: epochs of each ``update``.

    Returns:
      ``Model`` whose ``step`` moves one observation, ``batch_step`` a batch
      of particles by :meth:`Ensemble.step_particles` (one member per particle,
      fast), and ``update(params, key, buffer)`` fits on a
      :class:`~mbrl_jax.core.replay.ReplayBuffer` of
      transitions (:meth:`Ensemble.fit`'s
      diagnostics are dropped; call ``fit`` for them). The reward is the
      learned one (zero without ``learn_reward``; wrap the model with
      :func:`mbrl_jax.models.wrappers.with_task` for known functions), ``done``
      the termination probability.
    """
    if propagation not in PROPAGATION_MODES:
        raise ValueError(
            f"ensemble_model: propagation must be one of {PROPAGATION_MODES}, got {propagation!r}"
        )

    def step(params, key, obs, action):
        return ensemble.step(params, key, obs, action, propagation)

    def batch_step(params, key, obs, actions):
        return ensemble.step_particles(params, key, obs, actions, propagation)

    def update(params, key, buffer):
        return ensemble.fit(key, params, buffer, num_epochs)[0]

    return Model(init=ensemble.init, step=step, update=update, batch_step=batch_step)
