"""Actor-critic in imagination (Dreamer's behaviour learning) for any latent ``Model``.

From a batch of start states, the actor is rolled out ``H`` steps through the
model with :func:`mbrl_jax.core.rollout.rollout`; TD(lambda) returns
(:func:`mbrl_jax.core.returns.lambda_returns`) bootstrap from a slow (EMA)
copy of the critic. As in DreamerV3:

* the critic is a two-hot distribution over symlog bins, trained on the
  returns and regularised towards the slow critic's predictions;
* returns are normalised by ``max(1, P95 - P5)`` of the returns (EMA of both
  percentiles), so one entropy scale (3e-4) fits every reward scale;
* discrete actions (categorical with 1% unimix) learn by REINFORCE with the
  critic as baseline; continuous ones (``tanh`` of a Gaussian whose std is in
  ``[min_std, max_std]``) by backpropagating the returns through the model.

Works with any model whose ``step`` is differentiable in its state and action
(the RSSM: :func:`mbrl_jax.models.rssm.rssm_model`) and a ``feature(state)
-> [..., F]`` function.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from mbrl_jax.core.returns import lambda_returns
from mbrl_jax.core.rollout import rollout
from mbrl_jax.core.types import Array, Model, PRNGKey
from mbrl_jax.core.validation import check_range
from mbrl_jax.models.rssm import NormMLP
from mbrl_jax.models.value_transforms import symlog_bins, two_hot_loss, two_hot_mean


@dataclasses.dataclass(frozen=True)
class ACConfig:
    """Actor-critic settings (DreamerV3's defaults; validated on construction).

    Attributes:
      horizon: imagined steps ``H``.
      discount: ``gamma`` in ``[0, 1]`` (DreamerV3: ``1 - 1/333``).
      lambda_: TD(lambda) in ``[0, 1]``.
      actor_lr, critic_lr: Adam step sizes.
      entropy_scale: ``eta`` of the entropy bonus on normalised returns.
      slow_critic_rate: EMA rate of the slow critic per update, ``(0, 1]``.
      return_norm_decay: EMA decay of the return percentiles, ``[0, 1)``.
      hidden, layers: the actor's and critic's MLP.
      num_bins: two-hot bins of the critic.
      unimix: uniform mixed into discrete policies, ``[0, 1)``.
      min_std, max_std: bounds of the continuous policy's std (pre-``tanh``).
      max_grad_norm: global-norm clipping of both gradients.
    """

    horizon: int = 15
    discount: float = 0.997
    lambda_: float = 0.95
    actor_lr: float = 3e-5
    critic_lr: float = 3e-5
    entropy_scale: float = 3e-4
    slow_critic_rate: float = 0.02
    return_norm_decay: float = 0.99
    hidden: int = 256
    layers: int = 1
    num_bins: int = 255
    unimix: float = 0.01
    min_std: float = 0.1
    max_std: float = 1.0
    max_grad_norm: float = 100.0

    def __post_init__(self):
        for name in ("horizon", "hidden", "layers"):
            check_range(self, name, low=1)
        check_range(self, "num_bins", low=3)
        for name in ("discount", "lambda_"):
            check_range(self, name, low=0.0, high=1.0)
        for name in ("actor_lr", "critic_lr", "max_grad_norm", "min_std"):
            check_range(self, name, low=0.0, low_open=True)
        check_range(self, "entropy_scale", low=0.0)
        check_range(self, "slow_critic_rate", low=0.0, high=1.0, low_open=True)
        for name in ("return_norm_decay", "unimix"):
            check_range(self, name, low=0.0, high=1.0, high_open=True)
        check_range(self, "max_std", low=self.min_std, low_open=True)


@struct.dataclass
class ACState:
    """Everything the actor-critic learns (a pytree).

    Attributes:
      actor_params, critic_params, slow_critic_params: network params.
      actor_opt_state, critic_opt_state: Adam states.
      return_low, return_high: ``[]`` EMAs of the returns' 5th and 95th percentiles.
    """

    actor_params: Any
    critic_params: Any
    slow_critic_params: Any
    actor_opt_state: Any
    critic_opt_state: Any
    return_low: Array
    return_high: Array


def _optimiser(config: ACConfig, lr: float):
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(lr, eps=1e-5))


def _nets(config: ACConfig, action_size: int, discrete: bool):
    actor = NormMLP(config.hidden, config.layers, action_size if discrete else 2 * action_size)
    return actor, NormMLP(config.hidden, config.layers, config.num_bins, zero_out=True)


def ac_init(
    config: ACConfig, key: PRNGKey, feature_size: int, action_size: int, discrete: bool
) -> ACState:
    """A fresh actor, critic (zero output layer: value 0) and slow critic."""
    actor, critic = _nets(config, action_size, discrete)
    actor_key, critic_key = jax.random.split(key)
    feat = jnp.zeros((feature_size,))
    actor_params = actor.init(actor_key, feat)
    critic_params = critic.init(critic_key, feat)
    return ACState(
        actor_params=actor_params,
        critic_params=critic_params,
        slow_critic_params=critic_params,
        actor_opt_state=_optimiser(config, config.actor_lr).init(actor_params),
        critic_opt_state=_optimiser(config, config.critic_lr).init(critic_params),
        return_low=jnp.float32(0),
        return_high=jnp.float32(0),
    )


def _discrete_logits(config: ACConfig, raw: Array) -> Array:
    probs = (1 - config.unimix) * jax.nn.softmax(raw, -1) + config.unimix / raw.shape[-1]
    return jnp.log(probs)


def _gaussian(config: ACConfig, raw: Array):
    mean, std_raw = jnp.split(raw, 2, -1)
    std = config.min_std + (config.max_std - config.min_std) * jax.nn.sigmoid(std_raw + 2.0)
    return mean, std


def sample_action(
    config: ACConfig,
    action_size: int,
    discrete: bool,
    actor_params,
    key: PRNGKey,
    feat: Array,
    deterministic: bool = False,
) -> Array:
    """``feat [..., F]`` -> actions ``[...]`` int32 (discrete) or ``[..., A]`` in ``[-1, 1]``.

    Continuous samples are reparameterised (differentiable in ``actor_params``
    and ``feat``); ``deterministic`` takes the mode.
    """
    actor, _ = _nets(config, action_size, discrete)
    raw = actor.apply(actor_params, feat)
    if discrete:
        logits = _discrete_logits(config, raw)
        if deterministic:
            return jnp.argmax(logits, -1).astype(jnp.int32)
        return jax.random.categorical(key, logits, -1).astype(jnp.int32)
    mean, std = _gaussian(config, raw)
    if deterministic:
        return jnp.tanh(mean)
    return jnp.tanh(mean + std * jax.random.normal(key, mean.shape))


def value(config: ACConfig, critic_params, feat: Array) -> Array:
    """The critic's expected return ``[...]`` at ``feat [..., F]``."""
    _, critic = _nets(config, 1, True)
    return two_hot_mean(critic.apply(critic_params, feat), symlog_bins(config.num_bins))


def ac_update(
    config: ACConfig,
    action_size: int,
    discrete: bool,
    state: ACState,
    model: Model,
    model_params,
    feature: Callable[[Any], Array],
    key: PRNGKey,
    start: Any,
    start_cont: Array,
) -> tuple[ACState, dict]:
    """One actor and one critic step on ``N`` imagined trajectories.

    Args:
      config: settings.
      action_size: actions (discrete) or action size (continuous).
      discrete: the action type.
      state: the learner.
      model: the latent model (imagination calls its ``step``).
      model_params: its params (not differentiated).
      feature: ``feature(states [..., ...]) -> [..., F]``.
      key: PRNG key.
      start: pytree of ``[N, ...]`` start states (not differentiated).
      start_cont: ``[N]`` 1 where a start state is not terminal, else 0 (its
        trajectory gets no weight).

    Returns:
      ``(state, metrics)``: metrics of ``[]`` arrays (losses, mean return,
      entropy, the normaliser's scale).
    """
    sg = jax.lax.stop_gradient
    model_params, start, start_cont = sg(model_params), sg(start), sg(start_cont)
    actor, critic = _nets(config, action_size, discrete)
    bins = symlog_bins(config.num_bins)

    def imagine(actor_params):
        def policy(k, states, t):
            return sample_action(config, action_size, discrete, actor_params, k, feature(states))

        roll = rollout(model, policy, model_params, key, start, config.horizon)
        states = jax.tree.map(
            lambda a, b: jnp.concatenate([a, b[None]]), roll.states, roll.final_state
        )
        return roll, feature(states)  # [H + 1, N, F]

    def objective(actor_params, roll, feats):
        v = value(config, state.slow_critic_params, feats)  # [H + 1, N]
        discounts = config.discount * (1.0 - roll.dones.astype(jnp.float32))
        returns = lambda_returns(roll.rewards, discounts, v[1:], v[-1], config.lambda_)
        weight = sg(start_cont[None] * roll.mask)
        low = jnp.percentile(sg(returns), 5.0)
        high = jnp.percentile(sg(returns), 95.0)
        decay = config.return_norm_decay
        new_low = decay * state.return_low + (1 - decay) * low
        new_high = decay * state.return_high + (1 - decay) * high
        scale = jnp.maximum(1.0, new_high - new_low)
        advantage = (returns - sg(v[:-1])) / scale
        raw = actor.apply(actor_params, sg(feats[:-1]) if discrete else feats[:-1])
        if discrete:
            logits = _discrete_logits(config, raw)
            log_probs = jax.nn.log_softmax(logits, -1)
            taken = jnp.take_along_axis(log_probs, roll.actions[..., None], -1)[..., 0]
            entropy = -jnp.sum(jnp.exp(log_probs) * log_probs, -1)
            score = taken * sg(advantage) + config.entropy_scale * entropy
        else:
            _, std = _gaussian(config, raw)
            entropy = jnp.sum(jnp.log(std), -1)
            score = advantage + config.entropy_scale * entropy
        loss = -jnp.mean(weight * score)
        aux = (sg(returns), weight, new_low, new_high, scale, jnp.mean(entropy), sg(feats))
        return loss, aux

    if discrete:
        roll, feats = imagine(state.actor_params)
        roll, feats = sg(roll), sg(feats)
        loss_fn = lambda p: objective(p, roll, feats)  # noqa: E731
    else:

        def loss_fn(p):
            roll, feats = imagine(p)
            return objective(p, roll, feats)

    (actor_loss, aux), actor_grads = jax.value_and_grad(loss_fn, has_aux=True)(state.actor_params)
    returns, weight, new_low, new_high, scale, entropy, feats = aux
    actor_tx = _optimiser(config, config.actor_lr)
    updates, actor_opt_state = actor_tx.update(
        actor_grads, state.actor_opt_state, state.actor_params
    )
    actor_params = optax.apply_updates(state.actor_params, updates)

    slow_mean = value(config, state.slow_critic_params, feats[:-1])

    def critic_loss_fn(critic_params):
        logits = critic.apply(critic_params, feats[:-1])
        loss = two_hot_loss(logits, returns, bins) + two_hot_loss(logits, slow_mean, bins)
        return jnp.mean(weight * loss)

    critic_loss, critic_grads = jax.value_and_grad(critic_loss_fn)(state.critic_params)
    critic_tx = _optimiser(config, config.critic_lr)
    updates, critic_opt_state = critic_tx.update(
        critic_grads, state.critic_opt_state, state.critic_params
    )
    critic_params = optax.apply_updates(state.critic_params, updates)
    new_state = ACState(
        actor_params=actor_params,
        critic_params=critic_params,
        slow_critic_params=optax.incremental_update(
            critic_params, state.slow_critic_params, config.slow_critic_rate
        ),
        actor_opt_state=actor_opt_state,
        critic_opt_state=critic_opt_state,
        return_low=new_low,
        return_high=new_high,
    )
    metrics = {
        "actor_loss": actor_loss,
        "critic_loss": critic_loss,
        "imagined_return": jnp.sum(weight * returns) / jnp.maximum(jnp.sum(weight), 1.0),
        "entropy": entropy,
        "return_scale": scale,
    }
    return new_state, metrics
