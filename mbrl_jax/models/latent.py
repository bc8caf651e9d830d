"""MuZero's learned latent model as a :class:`~mbrl_jax.core.types.Model`.

States are latent vectors ``[L]`` (from ``MuZeroNet.represent``), ``step`` is
the dynamics network with its categorical reward decoded to a scalar, and
episodes never end inside the model (MuZero learns absorbing states instead).
The model is trained jointly with the prediction heads by the agent's loss,
so it has no ``update`` of its own.
"""

from __future__ import annotations

import jax.numpy as jnp

from mbrl_jax.core.types import Model
from mbrl_jax.models.networks import MuZeroNet
from mbrl_jax.models.value_transforms import h_inverse, support_to_scalar


def muzero_model(net: MuZeroNet, obs_shape: tuple[int, ...]) -> Model:
    """The latent dynamics of ``net`` as a model.

    Args:
      net: the :class:`~mbrl_jax.models.networks.MuZeroNet`.
      obs_shape: shape of one observation (to initialise the representation).

    Returns:
      ``Model(init, step)``; ``init(key)`` initialises the whole network (the
      params hold representation, dynamics and prediction).
    """
    support = net.reward_support_size
    example_obs = jnp.zeros((1, *obs_shape), jnp.float32)

    def init(key):
        return net.init(key, example_obs, jnp.zeros(1, jnp.int32))

    def step(params, key, latent, action):
        del key
        next_latent, reward_logits = net.apply(params, latent, action, method=MuZeroNet.dynamics)
        reward = h_inverse(support_to_scalar(reward_logits, support))
        return next_latent, reward, jnp.bool_(False)

    return Model(init=init, step=step)


def muzero_evaluator(net: MuZeroNet):
    """``evaluate(params, key, latents [B, L]) -> (prior_logits [B, A], value [B])``."""

    def evaluate(params, key, latents):
        del key
        logits, value_logits = net.apply(params, latents, method=MuZeroNet.predict)
        return logits, h_inverse(support_to_scalar(value_logits, net.support_size))

    return evaluate


__all__ = ["muzero_evaluator", "muzero_model"]
