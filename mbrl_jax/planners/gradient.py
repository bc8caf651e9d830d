"""Gradient-based MPC: action sequences optimised by Adam through a differentiable model.

``make_gradient_planner(config, model, action_spec)`` returns the same
``Planner(init, plan)`` as the shooting planners
(:func:`mbrl_jax.planners.shooting.make_planner`), so PETS plans with it by a
config switch (``pets.Config(planner=GradientConfig(...))``).

* ``"gradient"``: ``num_sequences`` action sequences -- the warm start (the
  previous call's solution shifted by one step) and perturbations of it --
  each rolled out by ``num_particles`` particles through the model with
  :func:`mbrl_jax.core.rollout.rollout`; the objective (the particles' mean
  discounted return, minus ``beta`` times their std, plus the terminal value)
  is differentiated with respect to the actions and ascended by Adam
  (optax) for ``num_iterations`` steps. Bounds are kept by a tanh
  reparameterisation, ``a = centre + half_range * tanh(u)``, so every step
  stays feasible and the gradient never sticks to a clipped bound. The
  sequence acted on is the best one evaluated on the way.
* ``"cem_gradient"``: a short CEM search
  (:func:`mbrl_jax.planners.shooting.make_search` with ``cem``) whose
  ``num_sequences`` best elites are then refined by the same Adam steps; the
  CEM distribution is the warm start of the next call.

Gradients flow through the model's sampled transitions by the
reparameterisation trick (the ensemble samples ``mean + std * noise``), so
the objective is a stochastic function of the actions; each Adam step draws
fresh particles. The model must be differentiable in its states and actions:
a model with integer states (the tabular ones) or discrete actions is a
``ValueError``.

Model evaluations per action (rollouts of ``H`` steps, forward passes only;
a backward pass costs about two more):
``num_sequences * num_particles * num_iterations``, plus
``cem_population * num_particles * cem_iterations`` for the hybrid
(:meth:`GradientConfig.rollouts_per_action`).

Shape letters: S sequences, K particles, H horizon, A action size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from mbrl_jax.core.rollout import rollout
from mbrl_jax.core.types import Model
from mbrl_jax.core.validation import check_choice, check_float, check_range
from mbrl_jax.planners.shooting import (
    ActionSpec,
    MPCConfig,
    Planner,
    PlannerState,
    PlanResult,
    make_planner,
    make_search,
)

GRADIENT_METHODS = ("gradient", "cem_gradient")
#: Tanh saturates: warm starts are pulled this far inside the bounds before arctanh.
_EDGE = 0.995


@dataclasses.dataclass(frozen=True)
class GradientConfig:
    """Gradient-MPC settings (validated on construction; all static).

    Attributes:
      method: ``"gradient"`` or ``"cem_gradient"`` (CEM, then its elites refined).
      horizon: planning horizon ``H >= 1``.
      num_sequences: sequences optimised in parallel ``S >= 1`` (the warm start
        and ``S - 1`` perturbations of it; the hybrid's best ``S`` elites).
      num_iterations: Adam steps per action ``>= 1``.
      num_particles: rollouts per sequence ``K >= 1``.
      learning_rate: Adam's step size in the unbounded ``u`` space, ``> 0``.
      init_std: std of the perturbations of the warm start in ``u`` space, ``> 0``.
      beta: weight of the particles' return std subtracted from the objective
        (any finite value).
      discount: discount of rewards along the horizon, in ``[0, 1]``.
      max_grad_norm: each sequence's gradient is clipped to this norm, ``> 0``
        (long horizons through a learned model can give large gradients).
      cem_population: the hybrid's CEM population ``>= num_sequences``.
      cem_iterations: the hybrid's CEM iterations ``>= 1``.
      cem_elites: the hybrid's CEM elites, ``num_sequences <= . <= cem_population``.
    """

    method: str = "gradient"
    horizon: int = 15
    num_sequences: int = 4
    num_iterations: int = 15
    num_particles: int = 5
    learning_rate: float = 0.1
    init_std: float = 0.5
    beta: float = 0.0
    discount: float = 1.0
    max_grad_norm: float = 10.0
    cem_population: int = 30
    cem_iterations: int = 1
    cem_elites: int = 5

    def __post_init__(self):
        check_choice(self, "method", GRADIENT_METHODS)
        for name in (
            "horizon",
            "num_sequences",
            "num_iterations",
            "num_particles",
            "cem_population",
            "cem_iterations",
            "cem_elites",
        ):
            check_range(self, name, low=1)
        for name in ("learning_rate", "init_std", "max_grad_norm"):
            check_range(self, name, low=0.0, low_open=True)
        check_float(self, "beta")
        check_range(self, "discount", low=0.0, high=1.0)
        if self.method == "cem_gradient" and not (
            self.num_sequences <= self.cem_elites <= self.cem_population
        ):
            raise ValueError(
                "GradientConfig: need num_sequences <= cem_elites <= cem_population, got "
                f"{self.num_sequences}, {self.cem_elites}, {self.cem_population}"
            )

    # Duck-typed with MPCConfig where PETS reads it.
    uses_members = False

    def rollouts_per_action(self) -> int:
        """Rollouts of ``H`` model steps (forward passes) one planning call makes."""
        total = self.num_sequences * self.num_particles * self.num_iterations
        if self.method == "cem_gradient":
            total += self.cem_population * self.num_particles * self.cem_iterations
        return total

    def cem_config(self) -> MPCConfig:
        """The hybrid's CEM stage as an :class:`~mbrl_jax.planners.shooting.MPCConfig`."""
        return MPCConfig(
            method="cem",
            horizon=self.horizon,
            population=self.cem_population,
            num_iterations=self.cem_iterations,
            num_elites=self.cem_elites,
            num_particles=self.num_particles,
            init_std=self.init_std / 2.0,
            beta=self.beta,
            discount=self.discount,
        )


def check_differentiable(start: Any, where: str = "gradient planner") -> None:
    """Raises ``ValueError`` unless every leaf of ``start`` is floating point
    (trace-time check: the states of a model one can differentiate through)."""
    for leaf in jax.tree.leaves(start):
        if not jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.floating):
            raise ValueError(
                f"{where}: needs a differentiable model with floating-point states; got a "
                f"state of dtype {jnp.asarray(leaf).dtype} (a tabular model? plan with "
                "planners.shooting or planners.dp instead)"
            )


def make_gradient_planner(
    config: GradientConfig,
    model: Model,
    action_spec: ActionSpec,
    particle_init: Callable | None = None,
    terminal_value_fn: Callable | None = None,
) -> Planner:
    """Builds a gradient (or CEM-then-gradient) planner.

    Args:
      config: :class:`GradientConfig`.
      model: a :class:`~mbrl_jax.core.types.Model` differentiable in states
        and actions (the ensemble, an MLP, the true environment where its
        step is smooth); ``plan``'s ``params`` are its params.
      action_spec: continuous :class:`~mbrl_jax.planners.shooting.ActionSpec`.
      particle_init: optional ``(state, n) -> states [n]``; default broadcasts.
      terminal_value_fn: optional ``(states [N]) -> [N]`` value after ``H`` steps.

    Returns:
      ``Planner(init, plan)``; ``plan(params, key, state, planner_state) ->
      (PlanResult, PlannerState)`` with ``PlanResult.iteration_best`` the best
      objective after each Adam step ``[num_iterations]``.

    Raises:
      ValueError: discrete actions, or (when ``plan`` is traced) a model state
        that is not floating point.
    """
    c = config
    if not isinstance(c, GradientConfig):
        raise ValueError(f"make_gradient_planner: config must be a GradientConfig, got {c!r}")
    if action_spec.discrete:
        raise ValueError(
            f"GradientConfig.method {c.method!r} needs continuous actions (a Box action "
            f"space); got {action_spec.num_actions} discrete actions: use planners.shooting"
        )
    h, s, k = c.horizon, c.num_sequences, c.num_particles
    dim = action_spec.dim
    low = jnp.asarray(action_spec.low, jnp.float32)
    high = jnp.asarray(action_spec.high, jnp.float32)
    centre, half = (low + high) / 2.0, (high - low) / 2.0
    particle_init = particle_init or (
        lambda state, n: jax.tree.map(lambda x: jnp.broadcast_to(x, (n, *jnp.shape(x))), state)
    )
    optimizer = optax.adam(c.learning_rate)
    cem_init, cem_search = (
        make_search(c.cem_config(), model, action_spec, particle_init, terminal_value_fn)
        if c.method == "cem_gradient"
        else (None, None)
    )

    def to_actions(u):
        return centre + half * jnp.tanh(u)

    def to_u(actions):
        return jnp.arctanh(jnp.clip((actions - centre) / half, -_EDGE, _EDGE))

    def evaluate(params, key, start, u):
        """``u [S, H, A]`` -> (objective [S], (std [S], mean return [S]))."""
        num = u.shape[0]
        flat = jnp.repeat(to_actions(u), k, axis=0)  # particle j of sequence i at i * K + j
        result = rollout(
            model,
            lambda key, states, t: flat[:, t],
            params,
            key,
            particle_init(start, num * k),
            h,
            discount=c.discount,
            keep_trajectory=False,
        )
        total = result.discounted_return
        if terminal_value_fn is not None:
            total = total + result.final_alive * (c.discount**h) * terminal_value_fn(
                result.final_state
            )
        returns = total.reshape(num, k)
        mean = returns.mean(-1)
        # sqrt's derivative at 0 is infinite (one particle, or a deterministic
        # model): differentiate a smoothed std, and only where beta uses it.
        std = jnp.sqrt(returns.var(-1) + 1e-12)
        objective = mean - c.beta * std if c.beta != 0.0 else mean
        return objective, (jax.lax.stop_gradient(std), mean)

    def total_objective(u, params, key, start):
        objective, aux = evaluate(params, key, start, u)
        # Sequences are independent: the gradient of the sum is each one's own.
        return jnp.where(jnp.isfinite(objective), objective, 0.0).sum(), (objective, aux)

    grad_fn = jax.grad(total_objective, has_aux=True)

    def clip(g):
        norm = jnp.sqrt(jnp.sum(g**2, axis=(1, 2), keepdims=True))
        return g * jnp.minimum(1.0, c.max_grad_norm / jnp.maximum(norm, 1e-12))

    def ascend(params, key, start, u0):
        """Adam from ``u0 [S, H, A]``; returns the best ``(u, objective, std, mean)``
        evaluated on the way and the best objective after each step."""

        def body(carry, step_key):
            u, opt_state, best = carry
            grads, (objective, (std, mean)) = grad_fn(u, params, step_key, start)
            objective = jnp.where(jnp.isfinite(objective), objective, -jnp.inf)
            top = jnp.argmax(objective)
            better = objective[top] > best[1]
            best = jax.tree.map(
                lambda new, old: jnp.where(better, new, old),
                (u[top], objective[top], std[top], mean[top]),
                best,
            )
            grads = jnp.nan_to_num(clip(grads))
            updates, opt_state = optimizer.update(-grads, opt_state, u)
            return (optax.apply_updates(u, updates), opt_state, best), best[1]

        best0 = (u0[0], jnp.float32(-jnp.inf), jnp.float32(0.0), jnp.float32(0.0))
        (_, _, best), iteration_best = jax.lax.scan(
            body,
            (u0, optimizer.init(u0), best0),
            jax.random.split(key, c.num_iterations),
        )
        return best, iteration_best

    def init() -> PlannerState:
        if cem_init is not None:
            return cem_init()
        return PlannerState(
            mean=jnp.broadcast_to(centre, (h, dim)), elites=jnp.zeros((0, h, dim), jnp.float32)
        )

    def plan(params, key, start, planner_state: PlannerState):
        check_differentiable(start)
        search_key, noise_key, ascend_key = jax.random.split(key, 3)
        if cem_search is not None:
            _, next_state, elites = cem_search(params, search_key, start, planner_state)
            u0 = to_u(elites[:s])
        else:
            warm = to_u(planner_state.mean)
            noise = c.init_std * jax.random.normal(noise_key, (s, h, dim))
            u0 = warm[None] + noise.at[0].set(0.0)  # sequence 0: the warm start itself
        (u, objective, std, mean_return), iteration_best = ascend(params, ascend_key, start, u0)
        sequence = to_actions(u)
        if cem_search is None:
            # Warm start: the solution shifted by one step, the centre appended.
            shifted = jnp.concatenate([sequence[1:], centre[None]], axis=0)
            next_state = PlannerState(mean=shifted, elites=planner_state.elites)
        result = PlanResult(sequence[0], sequence, objective, std, iteration_best, mean_return)
        return result, next_state

    return Planner(init, plan)


def make_any_planner(
    config: MPCConfig | GradientConfig,
    model: Model,
    action_spec: ActionSpec,
    particle_init: Callable | None = None,
    terminal_value_fn: Callable | None = None,
) -> Planner:
    """The planner a config asks for: shooting (:class:`MPCConfig`) or gradient
    (:class:`GradientConfig`)."""
    if isinstance(config, GradientConfig):
        return make_gradient_planner(config, model, action_spec, particle_init, terminal_value_fn)
    if isinstance(config, MPCConfig):
        return make_planner(config, model, action_spec, particle_init, terminal_value_fn)
    raise ValueError(f"planner config must be an MPCConfig or a GradientConfig, got {config!r}")
