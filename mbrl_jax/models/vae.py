"""V of World Models (Ha & Schmidhuber, 2018): a variational autoencoder of observations.

* vector observations ``[D]``: an MLP encoder and decoder on observations
  standardised by the mean and standard deviation of the data they are fitted
  on (without it a small-scale coordinate, CartPole's pole angle, costs the
  reconstruction almost nothing and the latent drops it);
* images ``[64, 64, C]`` in ``[0, 1]``: the paper's encoder (four stride-2
  convolutions of 32, 64, 128 and 256 channels, kernel 4) and decoder (four
  stride-2 transposed convolutions, kernels 5, 5, 6, 6, sigmoid output).

The loss is the Gaussian reconstruction error (half the squared error, summed
over the observation) plus ``kl_weight`` times the KL divergence to the unit
Gaussian prior, with optional free bits (a total KL below
``free_bits * latent_size`` nats is not penalised). :func:`make_vae` returns
the pure functions; :class:`VAEState` carries everything that changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from mbrl_jax.core.types import Array, PRNGKey
from mbrl_jax.core.validation import check_range

IMAGE_SHAPE = (64, 64)


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    """V's settings (validated on construction).

    Attributes:
      obs_shape: ``(D,)`` for vectors or ``(64, 64, C)`` for images.
      latent_size: ``L``. The paper's 32 is for 64 x 64 images; a ``D``-vector
        needs no more than ``D`` (the World Models agent uses ``D``).
      hidden_size: width of the MLP layers (vectors).
      num_layers: MLP layers of the encoder and of the decoder (vectors).
      kl_weight: weight of the KL term, ``>= 0``.
      free_bits: KL nats per latent dimension left unpenalised, ``>= 0``.
      learning_rate: Adam step size.
      batch_size: observations per update.
    """

    obs_shape: tuple[int, ...] = (4,)
    latent_size: int = 32
    hidden_size: int = 64
    num_layers: int = 2
    kl_weight: float = 1.0
    free_bits: float = 0.0
    learning_rate: float = 1e-3
    batch_size: int = 128

    def __post_init__(self):
        shape = tuple(self.obs_shape)
        is_image = len(shape) == 3 and shape[:2] == IMAGE_SHAPE and shape[2] >= 1
        if not ((len(shape) == 1 and shape[0] >= 1) or is_image):
            raise ValueError(
                f"VAEConfig.obs_shape must be (D,) or (64, 64, C), got {self.obs_shape!r}"
            )
        for name in ("latent_size", "hidden_size", "num_layers", "batch_size"):
            check_range(self, name, low=1)
        for name in ("kl_weight", "free_bits"):
            check_range(self, name, low=0.0)
        check_range(self, "learning_rate", low=0.0, low_open=True)

    @property
    def is_image(self) -> bool:
        return len(self.obs_shape) == 3


class VAENet(nn.Module):
    """Encoder and decoder; ``x [..., *obs_shape]`` (standardised) -> ``(recon, mean, logvar)``."""

    config: VAEConfig

    def setup(self):
        cfg = self.config
        if cfg.is_image:
            self.enc = [nn.Conv(c, (4, 4), (2, 2), padding="VALID") for c in (32, 64, 128, 256)]
            self.dec_in = nn.Dense(1024)
            channels = (128, 64, 32, cfg.obs_shape[-1])
            self.dec = [
                nn.ConvTranspose(c, (k, k), (2, 2), padding="VALID")
                for c, k in zip(channels, (5, 5, 6, 6), strict=True)
            ]
        else:
            self.enc = [nn.Dense(cfg.hidden_size) for _ in range(cfg.num_layers)]
            self.dec = [nn.Dense(cfg.hidden_size) for _ in range(cfg.num_layers)]
            self.dec_out = nn.Dense(cfg.obs_shape[0])
        self.mean_head = nn.Dense(cfg.latent_size)
        self.logvar_head = nn.Dense(cfg.latent_size)

    def encode(self, x: Array) -> tuple[Array, Array]:
        """``x [..., *obs_shape]`` -> ``(mean [..., L], logvar [..., L])``."""
        for layer in self.enc:
            x = nn.relu(layer(x))
        if self.config.is_image:
            x = x.reshape(*x.shape[:-3], -1)
        return self.mean_head(x), jnp.clip(self.logvar_head(x), -12.0, 6.0)

    def decode(self, z: Array) -> Array:
        """``z [..., L]`` -> ``[..., *obs_shape]`` (standardised vectors; images in ``[0, 1]``)."""
        if self.config.is_image:
            x = nn.relu(self.dec_in(z)).reshape(*z.shape[:-1], 1, 1, 1024)
            for layer in self.dec[:-1]:
                x = nn.relu(layer(x))
            return nn.sigmoid(self.dec[-1](x))
        x = z
        for layer in self.dec:
            x = nn.relu(layer(x))
        return self.dec_out(x)

    def __call__(self, x: Array, noise: Array):
        mean, logvar = self.encode(x)
        z = mean + jnp.exp(0.5 * logvar) * noise
        return self.decode(z), mean, logvar


@struct.dataclass
class VAEState:
    """V's params, optimiser state and input standardisation.

    Attributes:
      params: the network's params.
      opt_state: Adam's state.
      shift: ``[*obs_shape]`` subtracted from observations (zeros for images).
      scale: ``[*obs_shape]`` observations are divided by (ones for images).
    """

    params: Any
    opt_state: Any
    shift: Array
    scale: Array


class VAE(NamedTuple):
    """V as pure functions (:func:`make_vae`).

    Attributes:
      init: ``init(key) -> VAEState``.
      encode: ``encode(state, obs [..., *obs_shape]) -> (mean [..., L], logvar [..., L])``.
      decode: ``decode(state, z [..., L]) -> obs [..., *obs_shape]``.
      loss: ``loss(params, state, key, obs [B, ...]) -> (loss, (recon [], kl []))``:
        batch means; ``state`` gives the standardisation.
      fit: ``fit(state, key, obs [N, ...], count [], num_updates) -> (state,
        losses [num_updates])``: on the first ``count`` rows (a traced int),
        the standardisation refitted (vectors), then ``num_updates`` Adam steps
        on uniformly drawn minibatches (``num_updates`` static).
      config: the :class:`VAEConfig`.
    """

    init: Callable[[PRNGKey], VAEState]
    encode: Callable
    decode: Callable
    loss: Callable
    fit: Callable
    config: VAEConfig


def kl_to_prior(mean: Array, logvar: Array) -> Array:
    """``KL(N(mean, exp(logvar)) || N(0, I))`` summed over the last axis: ``[..., L] -> [...]``."""
    return 0.5 * jnp.sum(jnp.square(mean) + jnp.exp(logvar) - 1.0 - logvar, axis=-1)


def make_vae(config: VAEConfig) -> VAE:
    """V for ``config``: see :class:`VAE`."""
    net = VAENet(config)
    optimiser = optax.adam(config.learning_rate)
    obs_axes = tuple(range(-len(config.obs_shape), 0))

    def init(key):
        example = jnp.zeros((1, *config.obs_shape), jnp.float32)
        params = net.init(key, example, jnp.zeros((1, config.latent_size)))
        shape = config.obs_shape
        return VAEState(params, optimiser.init(params), jnp.zeros(shape), jnp.ones(shape))

    def standardise(state, obs):
        return (jnp.asarray(obs, jnp.float32) - state.shift) / state.scale

    def encode(state, obs):
        return net.apply(state.params, standardise(state, obs), method=VAENet.encode)

    def decode(state, z):
        x = net.apply(state.params, z, method=VAENet.decode)
        return x * state.scale + state.shift

    def loss(params, state, key, obs):
        x = standardise(state, obs)
        batch_shape = x.shape[: x.ndim - len(config.obs_shape)]
        noise = jax.random.normal(key, (*batch_shape, config.latent_size))
        recon, mean, logvar = net.apply(params, x, noise)
        recon_err = 0.5 * jnp.sum(jnp.square(recon - x), axis=obs_axes).mean()
        kl = kl_to_prior(mean, logvar)
        penalised = jnp.maximum(kl, config.free_bits * config.latent_size).mean()
        return recon_err + config.kl_weight * penalised, (recon_err, kl.mean())

    def fit(state, key, obs, count, num_updates: int):
        valid = (jnp.arange(obs.shape[0]) < count).astype(jnp.float32)
        if not config.is_image:
            weight = valid[:, None] / jnp.maximum(valid.sum(), 1.0)
            shift = jnp.sum(weight * obs, 0)
            scale = jnp.sqrt(jnp.sum(weight * jnp.square(obs - shift), 0))
            state = state.replace(shift=shift, scale=jnp.maximum(scale, 1e-3))

        def update(state, step_key):
            index_key, noise_key = jax.random.split(step_key)
            rows = jax.random.randint(index_key, (config.batch_size,), 0, count)
            (total, _), grads = jax.value_and_grad(loss, has_aux=True)(
                state.params, state, noise_key, obs[rows]
            )
            updates, opt_state = optimiser.update(grads, state.opt_state, state.params)
            params = optax.apply_updates(state.params, updates)
            return state.replace(params=params, opt_state=opt_state), total

        return jax.lax.scan(update, state, jax.random.split(key, num_updates))

    return VAE(init, encode, decode, loss, fit, config)
