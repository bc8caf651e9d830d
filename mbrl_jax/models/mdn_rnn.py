"""M of World Models (Ha & Schmidhuber, 2018): an MDN-RNN over V's latents, as a ``Model``.

An LSTM reads ``[z_t, a_t]`` (discrete actions one-hot); from its new hidden
state ``h_{t+1}`` a mixture density head gives ``p(z_{t+1})`` as a mixture of
``K`` Gaussians with diagonal covariance over the whole latent vector, and two
more heads the reward and the termination logit. Sampling at temperature
``tau`` divides the mixture logits by ``tau`` and multiplies the standard
deviations by ``sqrt(tau)``, as in the paper; termination is drawn from the
Bernoulli of the termination head (thresholding its probability at 0.5
instead lets dreams on CartPole never end, whatever the controller does, and
CMA-ES then has nothing to rank).

The model's state is :class:`LatentState` ``(z, h, c)``: the current latent
and the LSTM state *before* reading it, which is what the World Models
controller acts on. :func:`mdn_rnn_model` bundles ``init``, ``step`` (ONE
state) and ``update`` (one Adam step on a ``[B, T]`` batch of encoded
sequences, :class:`SequenceBatch`) as a :class:`~mbrl_jax.core.types.Model`,
so :func:`mbrl_jax.core.rollout.rollout` rolls it out ("dreams").
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from mbrl_jax.core.types import Array, Model, PRNGKey
from mbrl_jax.core.validation import check_range


@dataclasses.dataclass(frozen=True)
class MDNRNNConfig:
    """M's settings (validated on construction).

    Attributes:
      latent_size: ``L``, V's latent size.
      action_size: number of discrete actions, or the size of a continuous action.
      discrete_actions: actions are int indices (fed one-hot) or float vectors.
      hidden_size: LSTM units.
      num_mixtures: ``K`` Gaussians of the mixture (the paper's 5).
      learning_rate: Adam step size.
      max_grad_norm: gradients clipped to this global norm.
      reward_weight: weight of the reward head's squared error.
      done_weight: weight of the termination head's cross-entropy.
      min_log_std: lower bound of the mixture's log standard deviations.
    """

    latent_size: int
    action_size: int
    discrete_actions: bool = True
    hidden_size: int = 256
    num_mixtures: int = 5
    learning_rate: float = 1e-3
    max_grad_norm: float = 1.0
    reward_weight: float = 1.0
    done_weight: float = 1.0
    min_log_std: float = -5.0

    def __post_init__(self):
        for name in ("latent_size", "action_size", "hidden_size", "num_mixtures"):
            check_range(self, name, low=1)
        check_range(self, "learning_rate", low=0.0, low_open=True)
        check_range(self, "max_grad_norm", low=0.0, low_open=True)
        for name in ("reward_weight", "done_weight"):
            check_range(self, name, low=0.0)
        check_range(self, "min_log_std", low=-20.0, high=0.0)


class LatentState(NamedTuple):
    """M's state for one trajectory (a leading batch axis for many).

    Attributes:
      z: ``[L]`` current latent.
      h: ``[H]`` LSTM hidden state before reading ``z``.
      c: ``[H]`` LSTM cell state before reading ``z``.
    """

    z: Array
    h: Array
    c: Array


class MDNOutput(NamedTuple):
    """M's prediction after reading ``[z_t, a_t]``.

    Attributes:
      logits: ``[K]`` mixture logits of ``z_{t+1}``.
      mean: ``[K, L]`` component means.
      log_std: ``[K, L]`` component log standard deviations.
      reward: ``[]`` predicted reward of the step.
      done_logit: ``[]`` logit of the step terminating the episode.
    """

    logits: Array
    mean: Array
    log_std: Array
    reward: Array
    done_logit: Array


class MDNRNN(nn.Module):
    """``((c [..., H], h [..., H]), z [..., L], a [..., A]) -> ((c, h), MDNOutput)``."""

    config: MDNRNNConfig

    @nn.compact
    def __call__(self, carry, z, action_vec):
        cfg = self.config
        c, h = carry
        # One matmul for the four gates (input, forget, cell, output) keeps the
        # compiled unrolls small.
        gates = nn.Dense(4 * cfg.hidden_size, name="lstm")(jnp.concatenate([z, action_vec, h], -1))
        i, f, g, o = jnp.split(gates, 4, axis=-1)
        c = jax.nn.sigmoid(f + 1.0) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        carry = (c, h)
        k, latent = cfg.num_mixtures, cfg.latent_size
        mdn = nn.Dense(k * (1 + 2 * latent), name="mdn")(h)
        logits = mdn[..., :k]
        mean = mdn[..., k : k + k * latent].reshape(*h.shape[:-1], k, latent)
        log_std = mdn[..., k + k * latent :].reshape(*h.shape[:-1], k, latent)
        log_std = jnp.maximum(log_std, cfg.min_log_std)
        heads = nn.Dense(2, name="heads")(h)
        return carry, MDNOutput(logits, mean, log_std, heads[..., 0], heads[..., 1])


@struct.dataclass
class MDNState:
    """M's params and optimiser state (the model's ``params``)."""

    params: Any
    opt_state: Any


class SequenceBatch(NamedTuple):
    """``B`` encoded sequences of ``T`` steps (batch-major).

    Attributes:
      z: ``[B, T, L]`` latent of each step's observation.
      action: ``[B, T]`` int actions (or ``[B, T, A]`` floats).
      next_z: ``[B, T, L]`` latent of the observation after the step (before any reset).
      reward: ``[B, T]`` reward.
      done: ``[B, T]`` bool: the step terminated the episode.
      mask: ``[B, T]`` float: 1 for steps of the sequence's first episode,
        0 after it ended (the LSTM state does not carry across episodes).
    """

    z: Array
    action: Array
    next_z: Array
    reward: Array
    done: Array
    mask: Array


def mixture_log_prob(out: MDNOutput, z: Array) -> Array:
    """``log p(z)`` under one step's mixture ``out``: ``z [L]`` -> ``[]``."""
    log_weights = jax.nn.log_softmax(out.logits)
    std = jnp.exp(out.log_std)
    log_normal = -0.5 * jnp.square((z - out.mean) / std) - out.log_std - 0.5 * math.log(2 * math.pi)
    return jax.nn.logsumexp(log_weights + log_normal.sum(-1))


def sample_latent(out: MDNOutput, key: PRNGKey, tau) -> Array:
    """``z_{t+1} [L]`` drawn from one prediction at temperature ``tau > 0``: component
    from ``softmax(logits / tau)``, then its Gaussian with std times ``sqrt(tau)``."""
    component_key, noise_key = jax.random.split(key)
    k = jax.random.categorical(component_key, out.logits / tau)
    noise = jax.random.normal(noise_key, out.mean.shape[-1:])
    return out.mean[k] + jnp.sqrt(tau) * jnp.exp(out.log_std[k]) * noise


def action_vector(config: MDNRNNConfig, action: Array) -> Array:
    """``action`` as M's input: one-hot ``[..., A]`` for discrete actions, floats otherwise."""
    if config.discrete_actions:
        return jax.nn.one_hot(action, config.action_size)
    return jnp.asarray(action, jnp.float32).reshape(*jnp.shape(action)[:-1], config.action_size)


def initial_state(config: MDNRNNConfig, z: Array) -> LatentState:
    """The state at an episode's start: latent ``z [..., L]``, zero LSTM state."""
    zeros = jnp.zeros((*z.shape[:-1], config.hidden_size), jnp.float32)
    return LatentState(z, zeros, zeros)


def make_optimiser(config: MDNRNNConfig) -> optax.GradientTransformation:
    return optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm), optax.adam(config.learning_rate)
    )


def mdn_rnn_init(config: MDNRNNConfig, key: PRNGKey) -> MDNState:
    """Fresh params and optimiser state."""
    net = MDNRNN(config)
    z = jnp.zeros((config.latent_size,))
    carry = (jnp.zeros(config.hidden_size), jnp.zeros(config.hidden_size))
    a = jnp.zeros((config.action_size,))
    params = net.init(key, carry, z, a)
    return MDNState(params, make_optimiser(config).init(params))


def advance(config: MDNRNNConfig, params: Any, state: LatentState, action: Array):
    """Reads ``[z, a]``: ``(h [H], c [H], MDNOutput)`` of the step, no sampling."""
    (c, h), out = MDNRNN(config).apply(
        params, (state.c, state.h), state.z, action_vector(config, action)
    )
    return h, c, out


def mdn_rnn_step(config: MDNRNNConfig, params: MDNState, key: PRNGKey, state, action, tau=1.0):
    """One dream step of ONE state: ``(LatentState, reward [], done [] bool)``, ``done``
    drawn from the Bernoulli of the termination head."""
    latent_key, done_key = jax.random.split(key)
    h, c, out = advance(config, params.params, state, action)
    z = sample_latent(out, latent_key, tau)
    done = jax.random.uniform(done_key) < jax.nn.sigmoid(out.done_logit)
    return LatentState(z, h, c), out.reward, done


def sequence_loss(config: MDNRNNConfig, params: Any, batch: SequenceBatch):
    """M's loss on a ``[B, T]`` batch: masked means over steps of the mixture's
    negative log-likelihood of ``next_z``, plus the weighted reward squared error
    and termination cross-entropy.

    Returns:
      ``(loss [], (nll [], reward_error [], done_xent []))``.
    """
    net = MDNRNN(config)

    def one_sequence(seq):
        zeros = jnp.zeros((config.hidden_size,))

        def body(carry, step):
            z, a = step
            carry, out = net.apply(params, carry, z, action_vector(config, a))
            return carry, out

        _, outs = jax.lax.scan(body, (zeros, zeros), (seq.z, seq.action))
        nll = -jax.vmap(mixture_log_prob)(outs, seq.next_z)
        reward_err = jnp.square(outs.reward - seq.reward)
        done = seq.done.astype(jnp.float32)
        xent = optax.sigmoid_binary_cross_entropy(outs.done_logit, done)
        return nll, reward_err, xent

    nll, reward_err, xent = jax.vmap(one_sequence)(batch)
    mask = batch.mask.astype(jnp.float32)
    count = jnp.maximum(mask.sum(), 1.0)
    nll, reward_err, xent = ((x * mask).sum() / count for x in (nll, reward_err, xent))
    total = nll + config.reward_weight * reward_err + config.done_weight * xent
    return total, (nll, reward_err, xent)


def mdn_rnn_update(config: MDNRNNConfig, state: MDNState, batch: SequenceBatch):
    """One clipped Adam step on ``batch``: ``(state, (loss, (nll, reward_error, done_xent)))``."""
    (loss, parts), grads = jax.value_and_grad(
        lambda p: sequence_loss(config, p, batch), has_aux=True
    )(state.params)
    updates, opt_state = make_optimiser(config).update(grads, state.opt_state, state.params)
    return MDNState(optax.apply_updates(state.params, updates), opt_state), (loss, parts)


def mdn_rnn_model(config: MDNRNNConfig, tau=1.0) -> Model:
    """M as a :class:`~mbrl_jax.core.types.Model` sampling at temperature ``tau``.

    ``tau`` may be a traced value (build the model inside the traced function).

    Returns:
      ``Model(init, step, update)``: ``init(key) -> MDNState``;
      ``step(params, key, LatentState, action) -> (LatentState, reward [], done [])``
      for ONE state (``done`` drawn); ``update(params, key, SequenceBatch)
      -> params`` (one Adam step; the key is unused).
    """

    def step(params, key, state, action):
        return mdn_rnn_step(config, params, key, state, action, tau)

    def update(params, key, batch):
        del key
        return mdn_rnn_update(config, params, batch)[0]

    return Model(lambda key: mdn_rnn_init(config, key), step, update)
