"""MC dropout and a mean-field Bayesian MLP, as drop-in replacements for the
bootstrap ensemble.

Both are one network with a distribution over its weights: dropout masks
(Gal & Ghahramani's MC dropout: the dropout of training kept at prediction)
or a factorised Gaussian per weight (variational, trained with the local
reparameterisation trick and a KL term to a zero-mean Gaussian prior). After
every fit, ``M = EnsembleConfig.ensemble_size`` weight samples are drawn and
**materialised** as member-stacked parameters ``[M, ...]`` with exactly the
bootstrap ensemble's layout: a dropout mask on a hidden layer's output is the
same as scaling the rows of the next layer's kernel, and a sampled Gaussian
weight is just a weight. So every prediction path of
:class:`~mbrl_jax.models.ensemble.Ensemble` (``predict``, ``step_particles``
with TS1/TSinf/expectation propagation, the planners, PETS, the diagnostics)
runs on these models unchanged, with sample ``m`` playing member ``m``: the
aleatoric / epistemic split of ``predict`` is the mean of the samples'
variances and the variance of their means, as MC dropout's papers define it.
The samples stay fixed between fits, which keeps TSinf's particle-to-member
assignment meaningful; they are redrawn with a fresh key at each fit.

Build one with :func:`~mbrl_jax.models.ensemble.make_ensemble` and
``EnsembleConfig(uncertainty="dropout" | "bayesian")``.

Shape letters: M weight samples (the config's ``ensemble_size``), B minibatch.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax
from flax import struct

from mbrl_jax.core.types import Array, PRNGKey
from mbrl_jax.models.ensemble import Ensemble, Normalizer
from mbrl_jax.models.networks import silu, soft_bound

__all__ = ["SampledEnsemble", "SampledState"]


@struct.dataclass
class SampledState:
    """A sampled model's state.

    Attributes:
      params: ``[M, ...]`` the materialised weight samples, laid out as the
        bootstrap ensemble's member-stacked params (what prediction reads).
      posterior: what training updates: the network's params (dropout), or
        ``{"mean": params, "rho": params}`` with ``std = softplus(rho)``
        (Bayesian; the log-variance bounds are point estimates).
      opt_state: optimiser state of ``posterior``.
      normalizer: as the ensemble's.
      elites: ``[num_elites]`` samples with the lowest validation loss.
    """

    params: dict
    posterior: dict
    opt_state: optax.OptState
    normalizer: Normalizer
    elites: Array


def _is_weight(path) -> bool:
    """Dense kernels and biases are random; the log-variance bounds are not."""
    return any(getattr(k, "key", None) in ("kernel", "bias") for k in path)


def _inverse_softplus(x: float) -> float:
    return math.log(math.expm1(x))


class SampledEnsemble(Ensemble):
    """MC dropout (``uncertainty="dropout"``) or a mean-field Bayesian MLP
    (``"bayesian"``) behind the :class:`~mbrl_jax.models.ensemble.Ensemble`
    interface; see the module doc."""

    bootstrap = False

    def __init__(self, config):
        if config.uncertainty not in ("dropout", "bayesian"):
            raise ValueError(
                "SampledEnsemble: EnsembleConfig.uncertainty must be 'dropout' or 'bayesian', "
                f"got {config.uncertainty!r} (the bootstrap ensemble is Ensemble)"
            )
        super().__init__(config)
        if config.uncertainty == "bayesian":
            # The KL term is the regulariser; weight decay would pull the
            # posterior's rho, and with it the weight noise, towards softplus(0).
            self.optimizer = optax.adam(config.learning_rate)

    # ----------------------------------------------------------------- state
    def num_trained(self) -> int:
        return 1

    def trainable(self, state):
        return state.posterior

    def init(self, key: PRNGKey) -> SampledState:
        """A fresh network (posterior) and ``M`` samples of it."""
        c = self.config
        init_key, sample_key = jax.random.split(key)
        net = jax.tree.map(
            lambda x: x[None], self.network.init(init_key, jnp.zeros((1, c.input_dim)))
        )
        if c.uncertainty == "bayesian":
            rho = _inverse_softplus(c.posterior_std_init)
            posterior = {"mean": net, "rho": jax.tree.map(lambda x: jnp.full_like(x, rho), net)}
        else:
            posterior = net
        normalizer = Normalizer(
            jnp.zeros(c.input_dim),
            jnp.ones(c.input_dim),
            jnp.zeros(c.output_dim),
            jnp.ones(c.output_dim),
        )
        return SampledState(
            params=self.materialise(posterior, sample_key),
            posterior=posterior,
            opt_state=self.optimizer.init(posterior),
            normalizer=normalizer,
            elites=jnp.arange(c.num_elites, dtype=jnp.int32),
        )

    def trained_state(self, key, state, params, opt_state, normalizer):
        return SampledState(
            self.materialise(params, key), params, opt_state, normalizer, state.elites
        )

    # -------------------------------------------------------------- sampling
    def materialise(self, posterior, key: PRNGKey) -> dict:
        """``M`` weight samples of the posterior as member-stacked params ``[M, ...]``."""
        c = self.config
        m = c.ensemble_size
        if c.uncertainty == "bayesian":
            mean, rho = posterior["mean"], posterior["rho"]
            leaves, treedef = jax.tree.flatten_with_path(mean)
            keys = jax.random.split(key, len(leaves))
            out = []
            for (path, mu), r, k in zip(leaves, jax.tree.leaves(rho), keys, strict=True):
                mu = mu[0]
                if _is_weight(path):
                    eps = jax.random.normal(k, (m, *mu.shape))
                    out.append(mu + jax.nn.softplus(r[0]) * eps)
                else:
                    out.append(jnp.broadcast_to(mu, (m, *mu.shape)))
            return jax.tree.unflatten(treedef, out)
        # Dropout: the mask on hidden layer i's output scales the rows of the
        # layers that read it (layer i + 1; after the last one, every head).
        keep = 1.0 - c.dropout_rate
        p = jax.tree.map(lambda x: jnp.broadcast_to(x[0], (m, *x.shape[1:])), posterior)
        layers = dict(p["params"])
        heads = [c.num_layers, c.num_layers + 1] + (
            [c.num_layers + 2] if c.learn_termination else []
        )
        for i, k in enumerate(jax.random.split(key, c.num_layers)):
            mask = jax.random.bernoulli(k, keep, (m, c.hidden_size)).astype(jnp.float32) / keep
            for j in [i + 1] if i + 1 < c.num_layers else heads:
                layer = dict(layers[f"Dense_{j}"])
                layer["kernel"] = layer["kernel"] * mask[:, :, None]
                layers[f"Dense_{j}"] = layer
        return {"params": layers}

    # -------------------------------------------------------------- training
    def _forward(self, p, x, dense, hidden_noise):
        """The member network, written out: ``dense(i, h)`` is layer ``i``,
        ``hidden_noise(i, h)`` acts on hidden layer ``i``'s output."""
        c = self.config
        h = x
        for i in range(c.num_layers):
            h = hidden_noise(i, silu(dense(i, h)))
        mean = dense(c.num_layers, h)
        logvar = soft_bound(dense(c.num_layers + 1, h), p["max_logvar"], p["min_logvar"])
        if c.learn_termination:
            term = dense(c.num_layers + 2, h)[..., 0]
        else:
            term = jnp.zeros(x.shape[:-1])
        return mean, logvar, term

    def train_loss(self, params, key, x, y, done, weight, num_train):
        """One minibatch ``x [1, B, in]`` of the single trained network: fresh
        dropout masks per item, or the Bayesian network's negative ELBO per
        item (Gaussian noise on each layer's pre-activations with the variance
        the weights' posterior implies, plus ``kl_weight x KL / (num_train x
        output_dim)``, as the likelihood term is a mean over output dimensions)."""
        c = self.config
        x, y, done, weight = x[0], y[0], done[0], weight[0]
        if c.uncertainty == "dropout":
            p = jax.tree.map(lambda v: v[0], params)["params"]
            keep = 1.0 - c.dropout_rate
            keys = jax.random.split(key, c.num_layers)

            def dense(i, h):
                return h @ p[f"Dense_{i}"]["kernel"] + p[f"Dense_{i}"]["bias"]

            def noise(i, h):
                return h * jax.random.bernoulli(keys[i], keep, h.shape) / keep

            outputs = self._forward(p, x, dense, noise)
            return self.output_loss(p, outputs, y, done, weight)
        mean = jax.tree.map(lambda v: v[0], params["mean"])["params"]
        std = jax.tree.map(lambda v: jax.nn.softplus(v[0]), params["rho"])["params"]
        keys = jax.random.split(key, c.num_layers + 3)

        def dense(i, h):  # local reparameterisation
            mu, sd = mean[f"Dense_{i}"], std[f"Dense_{i}"]
            out_mean = h @ mu["kernel"] + mu["bias"]
            out_var = (h**2) @ sd["kernel"] ** 2 + sd["bias"] ** 2
            return out_mean + jnp.sqrt(out_var + 1e-12) * jax.random.normal(keys[i], out_mean.shape)

        outputs = self._forward(mean, x, dense, lambda i, h: h)
        nll = self.output_loss(mean, outputs, y, done, weight)
        # ``output_loss`` averages the likelihood over the output dimensions,
        # so the KL per transition is divided by them too: the ELBO's balance.
        per_item = jnp.maximum(num_train, 1) * c.output_dim
        return nll + c.kl_weight * self.kl(params) / per_item

    def kl(self, posterior) -> Array:
        """``[]`` KL divergence of the weights' posterior from the prior
        ``N(0, prior_std^2)`` (Bayesian network)."""
        prior = self.config.prior_std
        leaves = jax.tree.leaves_with_path(posterior["mean"])
        total = jnp.float32(0.0)
        for (path, mu), rho in zip(leaves, jax.tree.leaves(posterior["rho"]), strict=True):
            if not _is_weight(path):
                continue
            sd = jax.nn.softplus(rho)
            term = jnp.log(prior / sd) + (sd**2 + mu**2) / (2 * prior**2) - 0.5
            total = total + term.sum()
        return total
