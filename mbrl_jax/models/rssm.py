"""Dreamer's world model (Hafner et al., DreamerV3): a recurrent state-space model, as a ``Model``.

The latent state is :class:`RSSMState` ``(deter [G], stoch [S, C])``: a GRU
state and ``S`` categorical latents of ``C`` classes each (one-hot samples,
straight-through gradients, 1% of a uniform mixed into every distribution).

* the **prior** (transition) ``p(stoch_t | deter_t)`` with ``deter_t =
  GRU(deter_{t-1}, stoch_{t-1}, a_{t-1})`` -- what imagination samples;
* the **posterior** (representation) ``q(stoch_t | deter_t, embed(o_t))``;
* heads on the feature ``[deter, stoch]``: the decoder (symlog vector
  observations, or images through a small CNN), the reward (two-hot over
  symlog bins) and the continuation (a Bernoulli logit).

:func:`observe` runs the posterior along replayed windows of
:class:`~mbrl_jax.core.types.Transition` s (episode ends reset the state),
:func:`world_model_loss` is DreamerV3's loss (reconstruction, reward and
continuation, KL balancing 0.5 dynamics / 0.1 representation with 1 free
nat), and :func:`rssm_model` bundles ``init``, ``step`` (one imagined prior
step of ONE state) and ``update`` as a :class:`~mbrl_jax.core.types.Model`,
so :func:`mbrl_jax.core.rollout.rollout` imagines with any policy.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from mbrl_jax.core.types import Array, Model, PRNGKey, Transition
from mbrl_jax.core.validation import check_float, check_int_value, check_range
from mbrl_jax.models.value_transforms import (
    symexp,
    symlog,
    symlog_bins,
    two_hot_loss,
    two_hot_mean,
)

#: Model sizes (GRU units, hidden units, layers, CNN depth): DreamerV3's xs / s / m
#: (its table B.1) and a ``tiny`` one for tests.
SIZES = {
    "tiny": dict(deter=64, hidden=64, layers=1, cnn_depth=8),  # Dreamer's CPU default, tests
    "xs": dict(deter=256, hidden=256, layers=1, cnn_depth=24),
    "s": dict(deter=512, hidden=512, layers=2, cnn_depth=32),
    "m": dict(deter=1024, hidden=640, layers=3, cnn_depth=48),
}


@dataclasses.dataclass(frozen=True)
class RSSMConfig:
    """The world model's settings (validated on construction).

    Attributes:
      obs_shape: ``(D,)`` for vector observations, ``(H, W, C)`` uint8 images
        (``H == W``, a multiple of 16, at least 16) for pixels.
      action_size: number of discrete actions, or the size of a continuous action.
      discrete_actions: actions are int indices (fed one-hot) or float vectors.
      deter: GRU units ``G``.
      stoch: categorical latents ``S``.
      classes: classes ``C`` per latent.
      hidden: units of every MLP layer.
      layers: MLP layers of the encoder, decoder and heads.
      cnn_depth: channels of the first conv layer (doubled per layer) for pixels.
      unimix: uniform mixed into the latent distributions, ``[0, 1)``.
      num_bins: two-hot bins of the reward head.
      free_nats: KL below this is not penalised.
      dyn_scale, rep_scale: weights of the dynamics and representation KL terms.
      learning_rate: Adam step size; ``max_grad_norm`` clips the gradient.
    """

    obs_shape: tuple[int, ...]
    action_size: int
    discrete_actions: bool = True
    deter: int = 256
    stoch: int = 32
    classes: int = 32
    hidden: int = 256
    layers: int = 1
    cnn_depth: int = 24
    unimix: float = 0.01
    num_bins: int = 255
    free_nats: float = 1.0
    dyn_scale: float = 0.5
    rep_scale: float = 0.1
    learning_rate: float = 1e-4
    max_grad_norm: float = 1000.0

    def __post_init__(self):
        shape = tuple(self.obs_shape) if isinstance(self.obs_shape, tuple | list) else None
        if not shape or len(shape) not in (1, 3):
            raise ValueError(
                f"RSSMConfig.obs_shape must be (D,) or (H, W, C), got {self.obs_shape!r}"
            )
        for i, n in enumerate(shape):
            check_int_value(f"RSSMConfig.obs_shape[{i}]", n, low=1)
        if len(shape) == 3 and (shape[0] != shape[1] or shape[0] % 16 or shape[0] < 16):
            raise ValueError(
                "RSSMConfig.obs_shape: the image encoder takes square images whose side "
                f"is a multiple of 16 (at least 16), got {shape}"
            )
        object.__setattr__(self, "obs_shape", shape)
        for name in ("action_size", "deter", "stoch", "classes", "hidden", "layers"):
            check_range(self, name, low=1)
        check_range(self, "cnn_depth", low=1)
        check_range(self, "num_bins", low=3)
        check_range(self, "unimix", low=0.0, high=1.0, high_open=True)
        for name in ("free_nats", "dyn_scale", "rep_scale"):
            check_range(self, name, low=0.0)
        check_range(self, "learning_rate", low=0.0, low_open=True)
        check_float(self, "max_grad_norm", low=0.0, low_open=True)

    @property
    def pixels(self) -> bool:
        return len(self.obs_shape) == 3

    @property
    def feature_size(self) -> int:
        return self.deter + self.stoch * self.classes


def preset(size: str, obs_shape, action_size: int, discrete_actions: bool, **overrides):
    """An :class:`RSSMConfig` of one of :data:`SIZES` (``"xs"``, ``"s"``, ``"m"``)."""
    if size not in SIZES:
        raise ValueError(f"rssm size must be one of {tuple(SIZES)}, got {size!r}")
    return RSSMConfig(
        obs_shape=tuple(obs_shape),
        action_size=action_size,
        discrete_actions=discrete_actions,
        **{**SIZES[size], **overrides},
    )


class RSSMState(NamedTuple):
    """The latent state of ONE trajectory (leading batch axes for many).

    Attributes:
      deter: ``[G]`` GRU state.
      stoch: ``[S, C]`` one-hot samples (straight-through in training).
    """

    deter: Array
    stoch: Array


def feature(state: RSSMState) -> Array:
    """``[..., G + S * C]``: what the heads, the actor and the critic read."""
    stoch = state.stoch.reshape(*state.stoch.shape[:-2], -1)
    return jnp.concatenate([state.deter, stoch], -1)


# ---------------------------------------------------------------------------- networks
class NormMLP(nn.Module):
    """Dense (no bias) + LayerNorm + SiLU layers, then an optional linear output
    (zero-initialised where ``zero_out``): every MLP of the RSSM and of Dreamer's
    actor and critic."""

    hidden: int
    layers: int
    out: int | None = None
    zero_out: bool = False

    @nn.compact
    def __call__(self, x):
        for _ in range(self.layers):
            x = nn.silu(nn.LayerNorm()(nn.Dense(self.hidden, use_bias=False)(x)))
        if self.out is not None:
            init = nn.initializers.zeros if self.zero_out else nn.linear.default_kernel_init
            x = nn.Dense(self.out, kernel_init=init)(x)
        return x


def _cnn_stages(config: RSSMConfig) -> int:
    return max(1, (config.obs_shape[0] // 4).bit_length() - 1)  # down to 4x4


def space_to_depth(x: Array) -> Array:
    """``[..., H, W, C]`` -> ``[..., H/2, W/2, 4C]``: each 2 x 2 patch as one vector."""
    *lead, h, w, c = x.shape
    x = x.reshape(*lead, h // 2, 2, w // 2, 2, c)
    x = jnp.moveaxis(x, -4, -3)  # [..., H/2, W/2, 2, 2, C]
    return x.reshape(*lead, h // 2, w // 2, 4 * c)


def depth_to_space(x: Array) -> Array:
    """The inverse of :func:`space_to_depth`: ``[..., H, W, 4C]`` -> ``[..., 2H, 2W, C]``."""
    *lead, h, w, c4 = x.shape
    x = x.reshape(*lead, h, w, 2, 2, c4 // 4)
    x = jnp.moveaxis(x, -3, -4)  # [..., H, 2, W, 2, C]
    return x.reshape(*lead, 2 * h, 2 * w, c4 // 4)


class ConvEncoder(nn.Module):
    """``uint8 [..., H, W, C]`` -> ``[..., E]``: stride-2 layers down to 4 x 4, flattened.

    Each layer is a 2 x 2 convolution of stride 2 (non-overlapping patches),
    computed as :func:`space_to_depth` and a matrix product: on a CPU, a pixel
    world-model update with XLA's 4 x 4 convolutions (DreamerV3's) took 3.5x
    longer for the same depths.
    """

    config: RSSMConfig

    @nn.compact
    def __call__(self, image):
        x = image.astype(jnp.float32) / 255.0 - 0.5
        for i in range(_cnn_stages(self.config)):
            x = nn.Dense(self.config.cnn_depth * 2**i, use_bias=False)(space_to_depth(x))
            x = nn.silu(nn.LayerNorm()(x))
        return x.reshape(*image.shape[:-3], -1)


class ConvDecoder(nn.Module):
    """``[..., F]`` -> ``[..., H, W, C]`` image in ``[-0.5, 0.5]``: from 4 x 4, stride-2
    transposed 2 x 2 convolutions as matrix products and :func:`depth_to_space`."""

    config: RSSMConfig

    @nn.compact
    def __call__(self, feat):
        cfg = self.config
        stages = _cnn_stages(cfg)
        depth = cfg.cnn_depth * 2 ** (stages - 1)
        x = nn.Dense(4 * 4 * depth)(feat).reshape(*feat.shape[:-1], 4, 4, depth)
        for i in reversed(range(stages - 1)):
            x = depth_to_space(nn.Dense(4 * cfg.cnn_depth * 2**i, use_bias=False)(x))
            x = nn.silu(nn.LayerNorm()(x))
        return depth_to_space(nn.Dense(4 * cfg.obs_shape[-1])(x))


class RSSMNet(nn.Module):
    """All of the world model's networks; methods are applied with ``method=``."""

    config: RSSMConfig

    def setup(self):
        cfg = self.config
        latent = cfg.stoch * cfg.classes
        if cfg.pixels:
            self.encoder = ConvEncoder(cfg)
            self.decoder = ConvDecoder(cfg)
        else:
            self.encoder = NormMLP(cfg.hidden, cfg.layers)
            self.decoder = NormMLP(cfg.hidden, cfg.layers, cfg.obs_shape[0])
        self.img_in = nn.Dense(cfg.hidden, use_bias=False)
        self.img_in_norm = nn.LayerNorm()
        self.gru = nn.Dense(3 * cfg.deter, use_bias=False)
        self.gru_norm = nn.LayerNorm()
        self.prior_net = NormMLP(cfg.hidden, 1, latent)
        self.post_net = NormMLP(cfg.hidden, 1, latent)
        self.reward_net = NormMLP(cfg.hidden, cfg.layers, cfg.num_bins, zero_out=True)
        self.cont_net = NormMLP(cfg.hidden, cfg.layers, 1)

    def encode(self, obs):
        """``obs [..., *obs_shape]`` -> embedding ``[..., E]``."""
        if self.config.pixels:
            return self.encoder(obs)
        return self.encoder(symlog(obs.astype(jnp.float32)))

    def _logits(self, raw):
        cfg = self.config
        logits = raw.reshape(*raw.shape[:-1], cfg.stoch, cfg.classes)
        if cfg.unimix > 0:
            probs = (1 - cfg.unimix) * jax.nn.softmax(logits, -1) + cfg.unimix / cfg.classes
            logits = jnp.log(probs)
        return logits

    def transition(self, deter, stoch, action_vec):
        """GRU step: ``(deter [..., G], stoch [..., S, C], a [..., A])`` -> ``(deter,
        prior logits [..., S, C])``. LayerNorm GRU with the update gate biased to keep."""
        flat = stoch.reshape(*stoch.shape[:-2], -1)
        x = nn.silu(self.img_in_norm(self.img_in(jnp.concatenate([flat, action_vec], -1))))
        gates = self.gru_norm(self.gru(jnp.concatenate([x, deter], -1)))
        reset, cand, update = jnp.split(gates, 3, -1)
        cand = jnp.tanh(jax.nn.sigmoid(reset) * cand)
        update = jax.nn.sigmoid(update - 1.0)
        deter = update * cand + (1 - update) * deter
        return deter, self._logits(self.prior_net(deter))

    def posterior(self, deter, embed):
        """``(deter [..., G], embed [..., E])`` -> posterior logits ``[..., S, C]``."""
        return self._logits(self.post_net(jnp.concatenate([deter, embed], -1)))

    def heads(self, feat):
        """``feat [..., F]`` -> ``(reward logits [..., K], continuation logit [...])``."""
        return self.reward_net(feat), self.cont_net(feat)[..., 0]

    def decode(self, feat):
        """``feat [..., F]`` -> reconstruction ``[..., *obs_shape]`` (symlog vector or image)."""
        return self.decoder(feat)

    def __call__(self, obs, action_vec):
        cfg = self.config
        lead = action_vec.shape[:-1]
        deter = jnp.zeros((*lead, cfg.deter))
        stoch = jnp.zeros((*lead, cfg.stoch, cfg.classes))
        deter, prior = self.transition(deter, stoch, action_vec)
        post = self.posterior(deter, self.encode(obs))
        feat = jnp.concatenate([deter, post.reshape(*lead, -1)], -1)
        return self.heads(feat), self.decode(feat)


# ----------------------------------------------------------------------------- helpers
def action_vector(config: RSSMConfig, action: Array) -> Array:
    """``action`` as the GRU's input: one-hot ``[..., A]`` or floats ``[..., A]``."""
    if config.discrete_actions:
        return jax.nn.one_hot(action, config.action_size)
    action = jnp.asarray(action, jnp.float32)
    return action.reshape(*action.shape[: action.ndim - 1], config.action_size)


def sample_stoch(key: PRNGKey, logits: Array) -> Array:
    """One-hot samples ``[..., S, C]`` with straight-through gradients to the probabilities.

    Sampled by inverting the CDF with one uniform per latent (``C`` times fewer
    random numbers than Gumbel-max, which dominated imagination's cost on CPU).
    """
    probs = jax.nn.softmax(logits, -1)
    u = jax.random.uniform(key, probs.shape[:-1] + (1,))
    cdf = jnp.cumsum(jax.lax.stop_gradient(probs), -1)
    index = jnp.minimum(jnp.sum(cdf < u, -1), probs.shape[-1] - 1)
    one_hot = jax.nn.one_hot(index, probs.shape[-1])
    return one_hot + probs - jax.lax.stop_gradient(probs)


def initial_state(config: RSSMConfig, lead: tuple[int, ...] = ()) -> RSSMState:
    """The state before an episode's first observation: zeros."""
    return RSSMState(
        jnp.zeros((*lead, config.deter)), jnp.zeros((*lead, config.stoch, config.classes))
    )


def categorical_kl(logits_p: Array, logits_q: Array) -> Array:
    """``KL(p || q)`` summed over ``S`` latents: ``[..., S, C]`` -> ``[...]``."""
    log_p = jax.nn.log_softmax(logits_p, -1)
    log_q = jax.nn.log_softmax(logits_q, -1)
    return jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=(-2, -1))


@struct.dataclass
class RSSMParams:
    """The model's params and its optimiser's state (the ``Model``'s params)."""

    params: Any
    opt_state: Any


def make_optimiser(config: RSSMConfig) -> optax.GradientTransformation:
    return optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm),
        optax.adam(config.learning_rate, eps=1e-8),
    )


def rssm_init(config: RSSMConfig, key: PRNGKey) -> RSSMParams:
    """Fresh params and optimiser state."""
    obs = jnp.zeros(config.obs_shape, jnp.uint8 if config.pixels else jnp.float32)
    params = RSSMNet(config).init(key, obs, jnp.zeros((config.action_size,)))
    return RSSMParams(params, make_optimiser(config).init(params))


def observe_step(config: RSSMConfig, params, key, state: RSSMState, action, embed):
    """One filtering step: prior from ``(state, action)``, then the posterior of ``embed``.

    Returns:
      ``(posterior RSSMState, prior logits [..., S, C], posterior logits [..., S, C])``.
    """
    net = RSSMNet(config)
    deter, prior = net.apply(
        params, state.deter, state.stoch, action_vector(config, action), method="transition"
    )
    post = net.apply(params, deter, embed, method="posterior")
    return RSSMState(deter, sample_stoch(key, post)), prior, post


def first_state(config: RSSMConfig, params, key, embed) -> RSSMState:
    """The posterior of an episode's first observation ``embed [..., E]`` (from zeros)."""
    lead = embed.shape[:-1]
    zero_action = jnp.zeros(
        lead if config.discrete_actions else (*lead, config.action_size),
        jnp.int32 if config.discrete_actions else jnp.float32,
    )
    state, _, _ = observe_step(config, params, key, initial_state(config, lead), zero_action, embed)
    return state


def select_state(where: Array, a: RSSMState, b: RSSMState) -> RSSMState:
    """``a`` for the batch entries ``[N]`` where ``where`` holds, ``b`` elsewhere."""
    return jax.tree.map(
        lambda x, y: jnp.where(where.reshape(-1, *([1] * (x.ndim - 1))), x, y), a, b
    )


def encode(config: RSSMConfig, params, obs: Array) -> Array:
    """``obs [..., *obs_shape]`` -> ``[..., E]``."""
    return RSSMNet(config).apply(params, obs, method="encode")


class Observed(NamedTuple):
    """The posterior along ``B`` windows of ``T`` transitions (batch-major).

    Attributes:
      states: :class:`RSSMState` ``[B, T, ...]`` posterior after each transition
        (of its ``next_state``).
      prior_logits, post_logits: ``[B, T, S, C]``.
    """

    states: RSSMState
    prior_logits: Array
    post_logits: Array


def observe(config: RSSMConfig, params, key: PRNGKey, window: Transition) -> Observed:
    """Filters ``window`` (a :class:`Transition` with leaves ``[B, T, ...]`` and
    ``extras`` the ``[B, T]`` bool episode ends, termination or truncation).

    The state starts at the posterior of ``window.state[:, 0]``; after a step
    that ended an episode it restarts at the posterior of the next step's
    ``state`` (the reset observation), so no state carries across episodes.
    """
    t = window.reward.shape[1]
    first_key, restart_key, loop_key = jax.random.split(key, 3)
    embed_obs = encode(config, params, window.state)
    embed_next = encode(config, params, window.next_state)
    start = first_state(config, params, first_key, embed_obs[:, 0])
    # Where an episode restarts, its first state depends on the reset
    # observation only: all of them are computed at once, outside the scan.
    reset_embed = jnp.concatenate([embed_obs[:, 1:], embed_obs[:, -1:]], 1)
    restarts = first_state(config, params, restart_key, reset_embed)  # [B, T, ...]
    time_major = jax.tree.map(
        lambda x: jnp.swapaxes(x, 0, 1),
        (window.action, embed_next, restarts, window.extras.astype(bool)),
    )

    def body(state, inputs):
        (action, e_next, restart, last), post_key = inputs
        post_state, prior, post = observe_step(config, params, post_key, state, action, e_next)
        return select_state(last, restart, post_state), (post_state, prior, post)

    _, (states, prior, post) = jax.lax.scan(
        body, start, (time_major, jax.random.split(loop_key, t))
    )
    swap = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731
    return Observed(jax.tree.map(swap, states), swap(prior), swap(post))


def world_model_loss(config: RSSMConfig, params, key: PRNGKey, window: Transition):
    """DreamerV3's world-model loss on a ``[B, T]`` window of transitions.

    Returns:
      ``(loss [], (Observed, metrics dict of []))``: the loss is the mean over
      steps of the symlog (vector) or pixel squared reconstruction error summed
      over observation dimensions, the reward's two-hot cross-entropy, the
      continuation's binary cross-entropy, and ``dyn_scale * max(free_nats,
      KL(sg(q) || p)) + rep_scale * max(free_nats, KL(q || sg(p)))``.
    """
    observed = observe(config, params, key, window)
    net = RSSMNet(config)
    feat = feature(observed.states)
    recon = net.apply(params, feat, method="decode")
    if config.pixels:
        target = window.next_state.astype(jnp.float32) / 255.0 - 0.5
    else:
        target = symlog(window.next_state.astype(jnp.float32))
    recon_loss = jnp.sum(jnp.square(recon - target), axis=tuple(range(2, recon.ndim)))
    reward_logits, cont_logit = net.apply(params, feat, method="heads")
    bins = symlog_bins(config.num_bins)
    reward_loss = two_hot_loss(reward_logits, window.reward, bins)
    cont = 1.0 - window.done.astype(jnp.float32)
    cont_loss = optax.sigmoid_binary_cross_entropy(cont_logit, cont)
    sg = jax.lax.stop_gradient
    dyn = categorical_kl(sg(observed.post_logits), observed.prior_logits)
    rep = categorical_kl(observed.post_logits, sg(observed.prior_logits))
    kl_loss = config.dyn_scale * jnp.maximum(dyn, config.free_nats) + config.rep_scale * (
        jnp.maximum(rep, config.free_nats)
    )
    loss = jnp.mean(recon_loss + reward_loss + cont_loss + kl_loss)
    metrics = {
        "recon_loss": jnp.mean(recon_loss),
        "reward_loss": jnp.mean(reward_loss),
        "cont_loss": jnp.mean(cont_loss),
        "kl": jnp.mean(dyn),
        "reward_error": jnp.mean(jnp.abs(two_hot_mean(reward_logits, bins) - window.reward)),
    }
    return loss, (observed, metrics)


def rssm_update(config: RSSMConfig, state: RSSMParams, key: PRNGKey, window: Transition):
    """One clipped Adam step on :func:`world_model_loss`.

    Returns:
      ``(state, (Observed, metrics))``; the posterior states are those before the
      step (Dreamer's imagination starts from them).
    """
    (_, (observed, metrics)), grads = jax.value_and_grad(
        lambda p: world_model_loss(config, p, key, window), has_aux=True
    )(state.params)
    updates, opt_state = make_optimiser(config).update(grads, state.opt_state, state.params)
    metrics = {**metrics, "model_grad_norm": optax.tree.norm(grads)}
    return RSSMParams(optax.apply_updates(state.params, updates), opt_state), (observed, metrics)


def imagine_step(config: RSSMConfig, params, key: PRNGKey, state: RSSMState, action):
    """One prior step of ONE state: ``(RSSMState, reward [], done [] in [0, 1])``;
    ``done`` is the probability that the step ended the episode."""
    net = RSSMNet(config)
    deter, prior = net.apply(
        params, state.deter, state.stoch, action_vector(config, action), method="transition"
    )
    next_state = RSSMState(deter, sample_stoch(key, prior))
    reward_logits, cont_logit = net.apply(params, feature(next_state), method="heads")
    reward = two_hot_mean(reward_logits, symlog_bins(config.num_bins))
    return next_state, reward, 1.0 - jax.nn.sigmoid(cont_logit)


class OpenLoop(NamedTuple):
    """Open-loop predictions along ``B`` windows, ``H = T - context`` steps each.

    Attributes:
      predicted: ``[B, H, *obs_shape]`` decoded observations (vectors in the
        environment's units; uint8 images for pixels).
      real: ``[B, H, *obs_shape]`` what the environment observed.
      predicted_reward, real_reward: ``[B, H]``.
      valid: ``[B, H]`` float32, 0 from the first episode end of the window on
        (what follows belongs to another episode).
    """

    predicted: Array
    real: Array
    predicted_reward: Array
    real_reward: Array
    valid: Array


def decode_observation(config: RSSMConfig, params, feat: Array) -> Array:
    """``feat [..., F]`` -> the decoder's observation in the environment's units
    (``symexp`` of the symlog prediction, or a uint8 image)."""
    recon = RSSMNet(config).apply(params, feat, method="decode")
    if config.pixels:
        return jnp.clip(jnp.round((recon + 0.5) * 255.0), 0, 255).astype(jnp.uint8)
    return symexp(recon)


def open_loop(
    config: RSSMConfig, params, key: PRNGKey, window: Transition, context: int
) -> OpenLoop:
    """The world model's open-loop predictions, as DreamerV3 reports them.

    The posterior filters the first ``context`` transitions of each window;
    from there the prior alone imagines the remaining ``T - context`` steps
    under the window's real actions (no observation seen), and every imagined
    state is decoded.

    Args:
      config: the model's settings.
      params: network params (``RSSMParams.params``).
      key: PRNG key.
      window: a :class:`Transition` with leaves ``[B, T, ...]`` and ``extras``
        the ``[B, T]`` episode ends.
      context: observed steps, ``1 <= context < T`` (static).

    Returns:
      :class:`OpenLoop`.
    """
    t = window.reward.shape[1]
    if isinstance(context, bool) or not isinstance(context, int) or not 1 <= context < t:
        raise ValueError(f"open_loop: context must be an integer in [1, {t - 1}], got {context!r}")
    observe_key, imagine_key = jax.random.split(key)
    seen = jax.tree.map(lambda x: x[:, :context], window)
    state = jax.tree.map(lambda x: x[:, -1], observe(config, params, observe_key, seen).states)
    actions = jnp.swapaxes(window.action[:, context:], 0, 1)

    def body(state, inputs):
        action, step_key = inputs
        state, reward, _ = imagine_step(config, params, step_key, state, action)
        return state, (feature(state), reward)

    keys = jax.random.split(imagine_key, t - context)
    _, (feats, rewards) = jax.lax.scan(body, state, (actions, keys))
    predicted = decode_observation(config, params, jnp.swapaxes(feats, 0, 1))
    # Step t is valid while no episode ended in transitions context - 1 .. t - 1
    # (the state carried into it; observe restarts inside the context itself):
    # the count of ends before t equals the count before context - 1.
    ends = window.extras.astype(jnp.int32)
    ends_before = jnp.cumsum(ends, axis=1) - ends
    valid = ends_before[:, context:] == ends_before[:, context - 1 : context]
    return OpenLoop(
        predicted=predicted,
        real=window.next_state[:, context:],
        predicted_reward=jnp.swapaxes(rewards, 0, 1),
        real_reward=window.reward[:, context:],
        valid=valid.astype(jnp.float32),
    )


def rssm_model(config: RSSMConfig) -> Model:
    """The RSSM as a :class:`~mbrl_jax.core.types.Model` over latent states.

    Returns:
      ``Model(init, step, update)``: ``init(key) -> RSSMParams``;
      ``step(params, key, RSSMState, action) -> (RSSMState, reward [], done [])``
      for ONE state (the prior; ``done`` a probability); ``update(params, key,
      window) -> params`` (one Adam step on a ``[B, T]`` :class:`Transition`
      window whose ``extras`` are the episode ends); ``batch_step`` the same
      step on ``[N, ...]`` states with one key.
    """

    def step(params, key, state, action):
        return imagine_step(config, params.params, key, state, action)

    def update(params, key, window):
        return rssm_update(config, params, key, window)[0]

    # The networks take leading batch axes, so N states step as one batch with one key.
    return Model(lambda key: rssm_init(config, key), step, update, batch_step=step)
