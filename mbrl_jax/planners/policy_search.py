"""Policy search in a model: a policy's imagined return, and optimisers that maximise it.

* :class:`TanhPolicy` -- a deterministic MLP policy squashed to the action bounds;
* :func:`model_return_fn` -- the mean discounted return of a policy rolled out
  in any differentiable :class:`~mbrl_jax.core.types.Model` by
  :func:`~mbrl_jax.core.rollout.rollout` (the policy is the rollout policy);
* :func:`make_policy_optimiser` -- ``"gradient"`` (backpropagation through the
  model's reparameterised particles, Adam with gradient clipping), or evosax's
  ``"cma_es"`` / ``"open_es"`` over the flattened policy parameters, each a
  ``lax.scan`` of a fixed number of updates.

The agent :mod:`mbrl_jax.agents.policy_through_model` trains its policy with these.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from evosax.algorithms import CMA_ES, Open_ES
from jax.flatten_util import ravel_pytree

from mbrl_jax.core.rollout import rollout
from mbrl_jax.core.types import Array, Model, PRNGKey

OPTIMIZERS = ("gradient", "cma_es", "open_es")


class TanhPolicy(nn.Module):
    """Deterministic policy: tanh MLP, output squashed into ``[low, high]``.

    ``obs [..., D]`` -> ``action [..., A]``.
    """

    hidden_sizes: Sequence[int]
    low: Any
    high: Any

    @nn.compact
    def __call__(self, obs):
        x = obs
        for width in self.hidden_sizes:
            x = jnp.tanh(nn.Dense(width)(x))
        low, high = jnp.asarray(self.low), jnp.asarray(self.high)
        # A small last layer starts the policy near the middle of the range.
        out = nn.Dense(low.shape[-1], kernel_init=nn.initializers.normal(0.01))(x)
        return low + 0.5 * (jnp.tanh(out) + 1.0) * (high - low)


def check_differentiable(model: Model, obs: Array, action: Array) -> None:
    """Raises ``ValueError`` unless ``model.step`` maps float observations and
    actions like ``obs [D]``, ``action [A]`` to float next observations and
    rewards that ``jax.grad`` can differentiate w.r.t. the action (traced with
    shapes only, nothing runs).

    A tabular model (integer state indices) fails this: analytic policy
    gradients need a model of float vectors.
    """
    obs, action = jnp.asarray(obs), jnp.asarray(action)
    if not (jnp.issubdtype(obs.dtype, jnp.floating) and jnp.issubdtype(action.dtype, jnp.floating)):
        raise ValueError(
            f"model: policy optimisation through a model needs float observations and "
            f"actions, got {obs.dtype} and {action.dtype}"
        )
    try:
        params = jax.eval_shape(model.init, jax.random.key(0))

        def value(p, a):
            next_obs, reward, _ = model.step(p, jax.random.key(0), obs, a)
            leaves = jax.tree.leaves(next_obs)
            if not all(jnp.issubdtype(x.dtype, jnp.floating) for x in leaves):
                raise TypeError(f"next state dtypes {[x.dtype for x in leaves]}")
            return jnp.asarray(reward, jnp.float32) + sum(jnp.sum(x) for x in leaves)

        jax.eval_shape(jax.grad(value, argnums=1), params, action)
    except Exception as error:  # noqa: BLE001 -- any tracing failure means "not differentiable"
        raise ValueError(
            "model: not differentiable w.r.t. actions on float observations (policy "
            f"optimisation through a model needs e.g. ensemble_model): {error}"
        ) from None


def model_return_fn(
    model: Model,
    policy_apply: Callable,
    horizon: int,
    discount: float,
    example_obs: Array,
    example_action: Array,
) -> Callable[[Any, Any, PRNGKey, Array], Array]:
    """``objective(policy_params, model_params, key, start [N, D]) -> []``: the mean
    discounted model return of the policy over ``horizon`` steps from ``start``.

    Differentiable w.r.t. ``policy_params`` wherever the model is (sampled
    particles are reparameterised: noise times a predicted std).

    Args:
      model: any :class:`~mbrl_jax.core.types.Model` of float vectors.
      policy_apply: ``policy_apply(policy_params, obs [N, D]) -> actions [N, A]``.
      horizon: ``H`` steps (static).
      discount: discount of the return.
      example_obs, example_action: one ``[D]`` observation and ``[A]`` action,
        to check the model is differentiable (:func:`check_differentiable`).

    Raises:
      ValueError: a model that is not differentiable (a tabular one, say).
    """
    check_differentiable(model, example_obs, example_action)

    def objective(policy_params, model_params, key, start):
        def policy(_key, states, _t):
            return policy_apply(policy_params, states)

        out = rollout(model, policy, model_params, key, start, horizon, discount, False)
        return out.discounted_return.mean()

    return objective


def make_policy_optimiser(
    kind: str,
    objective: Callable,
    example_params: Any,
    updates: int,
    learning_rate: float = 3e-3,
    max_grad_norm: float = 10.0,
    population: int = 32,
    es_sigma: float = 0.1,
) -> Callable:
    """An optimiser of policy parameters that maximises ``objective``.

    Args:
      kind: one of :data:`OPTIMIZERS`.
      objective: ``objective(policy_params, model_params, key, start [N, D]) -> []``
        (:func:`model_return_fn`).
      example_params: policy params of the right structure (ES flattens them).
      updates: ``U`` gradient steps or ES generations (static).
      learning_rate: Adam's step size (gradient and OpenAI-ES).
      max_grad_norm: global-norm clip of the gradient.
      population: ES candidates per generation (even for OpenAI-ES).
      es_sigma: CMA-ES's initial / OpenAI-ES's constant search std.

    Returns:
      ``optimise(key, policy_params, model_params, starts [U, N, D]) ->
      (policy_params, loss [U])``: update ``u`` evaluates on ``starts[u]``; the
      loss is minus the objective (ES: the population's mean).
    """
    if kind not in OPTIMIZERS:
        raise ValueError(f"make_policy_optimiser: kind must be one of {OPTIMIZERS}, got {kind!r}")
    if kind == "open_es" and population % 2:
        raise ValueError(
            f"make_policy_optimiser: open_es needs an even population, got {population}"
        )
    if kind == "gradient":
        tx = optax.chain(optax.clip_by_global_norm(max_grad_norm), optax.adam(learning_rate))
        grad_fn = jax.value_and_grad(lambda p, m, k, s: -objective(p, m, k, s))

        def optimise_gradient(key, params, model_params, starts):
            def step(carry, inputs):
                params, opt_state = carry
                roll_key, start = inputs
                loss, grads = grad_fn(params, model_params, roll_key, start)
                grads = jax.tree.map(lambda g: jnp.where(jnp.isfinite(g), g, 0.0), grads)
                change, opt_state = tx.update(grads, opt_state, params)
                return (optax.apply_updates(params, change), opt_state), loss

            (params, _), losses = jax.lax.scan(
                step, (params, tx.init(params)), (jax.random.split(key, updates), starts)
            )
            return params, losses

        return optimise_gradient

    flat_example, unravel = ravel_pytree(example_params)
    if kind == "cma_es":
        strategy = CMA_ES(population, flat_example)
        es_params = strategy.default_params.replace(std_init=jnp.float32(es_sigma))
    else:
        strategy = Open_ES(
            population,
            flat_example,
            optimizer=optax.adam(learning_rate),
            std_schedule=optax.constant_schedule(es_sigma),
        )
        es_params = strategy.default_params
    fitness_of = jax.vmap(
        lambda flat, m, k, s: -objective(unravel(flat), m, k, s), (0,) + (None,) * 3
    )

    def optimise_es(key, params, model_params, starts):
        init_key, loop_key = jax.random.split(key)
        es_state = strategy.init(init_key, ravel_pytree(params)[0], es_params)

        def generation(es_state, inputs):
            keys, start = inputs
            ask_key, roll_key, tell_key = keys
            population, es_state = strategy.ask(ask_key, es_state, es_params)
            # Every candidate on the same start states and model noise.
            fitness = fitness_of(population, model_params, roll_key, start)
            fitness = jnp.where(jnp.isfinite(fitness), fitness, 1e10)
            es_state, _ = strategy.tell(tell_key, population, fitness, es_state, es_params)
            return es_state, fitness.mean()

        keys = jax.random.split(loop_key, 3 * updates).reshape(updates, 3)
        es_state, losses = jax.lax.scan(generation, es_state, (keys, starts))
        return unravel(es_state.mean), losses

    return optimise_es
