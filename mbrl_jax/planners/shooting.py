"""Trajectory optimisation for MPC: random shooting, CEM, MPPI and iCEM.

``make_planner(config, model, action_spec)`` returns ``Planner(init, plan)``
for any :class:`~mbrl_jax.core.types.Model`: candidates are evaluated by
:func:`mbrl_jax.core.rollout.rollout` through the model's batched step (the
neural ensemble's particle propagation, or ``step`` vmapped). Rewards and
terminations are the model's; wrap it with
:func:`mbrl_jax.models.wrappers.with_task` for known ones.

Every candidate sequence is rolled out by ``num_particles`` particles; all
``population x particles`` rollouts advance together in one batched step per
horizon step (one rollout ``lax.scan`` over the horizon), and the optimiser's
iterations are a ``lax.scan`` too. The solution is shifted by one step to
warm-start the next call.

Objective of a sequence (``MPCConfig.objective``), from its particles' returns:

* ``"mean_std"``: the mean return over its particles minus ``beta`` times
  their standard deviation (``beta < 0`` is optimistic).
* ``"worst_member"`` (robust, max-min planning): particle ``j`` of a candidate
  sits at index ``i * K + j``, so with TSinf propagation and ``K`` a multiple
  of ``E = num_members`` it follows member ``j mod E``; the objective is the
  minimum over members of the mean return of that member's particles (minus
  ``beta`` times the std over all particles, as above).

``disagreement_bonus`` adds, to either, its weight times the members'
disagreement along the sequence: at each step the variance over the ``E``
member groups of the group-mean predicted state (the mean over that member's
particles first, so their sampled aleatoric noise partly averages out),
averaged over state dimensions, weighted by the share of the candidate's
particles still alive and summed with ``discount``. A positive weight is an
optimistic exploration bonus (go where the model is unsure), a negative one a
pessimistic penalty.

Shape letters: P population, K particles per candidate, E ensemble members,
H horizon, A action size, D state size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mbrl_jax.core.rollout import rollout
from mbrl_jax.core.types import Array, Model, PRNGKey
from mbrl_jax.core.validation import check_choice, check_float, check_range

METHODS = ("random", "cem", "mppi", "icem")
OBJECTIVES = ("mean_std", "worst_member")


@dataclasses.dataclass(frozen=True)
class ActionSpec:
    """Continuous actions in ``[low, high]`` (``shape (A,)``) or ``num_actions`` discrete ones."""

    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None
    num_actions: int | None = None

    def __post_init__(self):
        if self.num_actions is None:
            if self.low is None or self.high is None:
                raise ValueError("ActionSpec: continuous actions need both low and high bounds")
            if len(self.low) != len(self.high) or any(
                lo >= hi for lo, hi in zip(self.low, self.high, strict=True)
            ):
                raise ValueError(
                    f"ActionSpec: need low < high elementwise, got {self.low}, {self.high}"
                )
        elif self.num_actions < 2:
            raise ValueError(f"ActionSpec.num_actions must be >= 2, got {self.num_actions}")

    @property
    def discrete(self) -> bool:
        return self.num_actions is not None

    @property
    def dim(self) -> int:
        return 1 if self.discrete else len(self.low)

    @classmethod
    def from_space(cls, space) -> ActionSpec:
        """From a gymnax ``Discrete`` or ``Box`` action space."""
        if hasattr(space, "n"):
            return cls(num_actions=int(space.n))
        shape = tuple(space.shape) or (1,)
        low = jnp.broadcast_to(jnp.asarray(space.low, jnp.float32), shape)
        high = jnp.broadcast_to(jnp.asarray(space.high, jnp.float32), shape)
        return cls(low=tuple(map(float, low)), high=tuple(map(float, high)))


@dataclasses.dataclass(frozen=True)
class MPCConfig:
    """Planner settings (validated on construction; all static).

    Attributes:
      method: ``"random"`` shooting, ``"cem"``, ``"mppi"`` or ``"icem"``.
      horizon: planning horizon ``H >= 1``.
      population: candidate sequences per iteration ``P``.
      num_iterations: optimiser iterations (random shooting uses one).
      num_elites: elites of CEM/iCEM, ``<= population``.
      num_particles: rollouts per candidate ``K``.
      alpha: momentum of the CEM/iCEM mean and std (weight of the old values).
      init_std: initial standard deviation as a fraction of the action range
        (continuous); for discrete actions, the weight of the uniform
        distribution mixed into the warm-started probabilities (at most 1).
      beta: weight of the particles' return std subtracted from the objective
        (any finite value; ``< 0`` is optimistic).
      discount: discount of rewards along the horizon.
      temperature: MPPI's softmax temperature.
      noise_exponent: iCEM's coloured-noise exponent (0 white, 2 Brownian-like).
      keep_elites: iCEM's share of elites carried to the next iteration and step.
      return_mean_elites: act on the mean of the last iteration's elites
        (CEM/iCEM, continuous actions) instead of the best sequence found. With
        rewards that tie (an "alive" bonus), the best sequence is one noisy
        sample among many equals, and the elite mean is the steadier choice.
      objective: ``"mean_std"`` (mean return over particles) or
        ``"worst_member"`` (the minimum over ensemble members of the mean
        return of their particles; needs ``num_members``). See the module
        docstring.
      num_members: ensemble size ``E >= 1`` the particles are grouped by
        (particle ``j`` of a candidate follows member ``j mod E`` under TSinf);
        ``num_particles`` must be a multiple of it. ``None``: unknown, which
        is fine unless :attr:`uses_members` (PETS fills it from its ensemble).
      disagreement_bonus: weight of the members' predicted-state disagreement
        added to the objective (any finite value; ``> 0`` optimistic
        exploration, ``< 0`` pessimistic penalty, ``0`` off).
    """

    method: str = "cem"
    horizon: int = 15
    population: int = 350
    num_iterations: int = 5
    num_elites: int = 35
    num_particles: int = 20
    alpha: float = 0.1
    init_std: float = 0.5
    beta: float = 0.0
    discount: float = 1.0
    temperature: float = 1.0
    noise_exponent: float = 2.0
    keep_elites: float = 0.3
    return_mean_elites: bool = False
    objective: str = "mean_std"
    num_members: int | None = None
    disagreement_bonus: float = 0.0

    def __post_init__(self):
        check_choice(self, "method", METHODS)
        for name in ("horizon", "population", "num_iterations", "num_elites", "num_particles"):
            check_range(self, name, low=1)
        if self.population < self.num_elites:
            raise ValueError(
                f"MPCConfig.population ({self.population}) must be >= "
                f"num_elites ({self.num_elites})"
            )
        check_range(self, "alpha", low=0.0, high=1.0, high_open=True)
        check_range(self, "init_std", low=0.0, low_open=True)
        check_float(self, "beta")
        check_range(self, "discount", low=0.0, high=1.0)
        check_range(self, "temperature", low=0.0, low_open=True)
        check_range(self, "noise_exponent", low=0.0, high=10.0)
        check_range(self, "keep_elites", low=0.0, high=1.0)
        check_choice(self, "objective", OBJECTIVES)
        check_float(self, "disagreement_bonus")
        if self.num_members is not None:
            check_range(self, "num_members", low=1)
            if self.num_particles % self.num_members:
                raise ValueError(
                    f"MPCConfig.num_particles ({self.num_particles}) must be a multiple of "
                    f"num_members ({self.num_members})"
                )

    @property
    def uses_members(self) -> bool:
        """Whether planning groups particles by member (``worst_member`` or a
        disagreement bonus), so needs ``num_members``."""
        return self.objective == "worst_member" or self.disagreement_bonus != 0.0


@struct.dataclass
class PlannerState:
    """Warm start carried between calls.

    Attributes:
      mean: ``[H, A]`` sequence mean (continuous) or ``[H, num_actions]`` probabilities.
      elites: ``[E_kept, H, A]`` iCEM elites kept from the previous call.
    """

    mean: Array
    elites: Array


class PlanResult(NamedTuple):
    """Output of one planning call.

    Attributes:
      action: ``[A]`` float (continuous) or ``[]`` int32 (discrete): the first action.
      sequence: ``[H, A]`` or ``[H]`` the best sequence found.
      predicted_return: ``[]`` its objective (see :class:`MPCConfig`: with
        ``beta``, the worst member, the disagreement bonus, as configured).
      return_std: ``[]`` std of its return over particles.
      iteration_best: ``[num_iterations]`` best objective per iteration.
      mean_return: ``[]`` mean of its return over particles, without any of
        the objective's adjustments (what the model predicts it earns). With
        ``return_mean_elites`` it is the mean of the elites' mean returns, an
        estimate for the elite-mean sequence that was not itself rolled out.
    """

    action: Array
    sequence: Array
    predicted_return: Array
    return_std: Array
    iteration_best: Array
    mean_return: Array


class Planner(NamedTuple):
    """``init() -> PlannerState`` and
    ``plan(params, key, state, planner_state) -> (PlanResult, PlannerState)``."""

    init: Callable[[], PlannerState]
    plan: Callable[[Any, PRNGKey, Any, PlannerState], tuple[PlanResult, PlannerState]]


def colored_noise(key: PRNGKey, exponent: float, shape: tuple[int, ...], horizon: int) -> Array:
    """Gaussian noise ``[*shape, horizon]`` with power spectrum ``~ 1 / f^exponent``.

    Each of the ``shape`` samples has unit standard deviation along the horizon.
    """
    freqs = np.fft.rfftfreq(horizon)
    freqs[0] = 1.0 / horizon
    scale = freqs ** (-exponent / 2.0)
    re_key, im_key = jax.random.split(key)
    spectrum = (
        jax.random.normal(re_key, (*shape, freqs.shape[0]))
        + 1j * jax.random.normal(im_key, (*shape, freqs.shape[0]))
    ) * scale
    noise = jnp.fft.irfft(spectrum, n=horizon, axis=-1)
    # Each sample is scaled to unit standard deviation over the horizon (around
    # its own mean). This keeps the low-frequency offsets large, i.e. bolder
    # exploration than exact marginal-variance scaling, which planned worse on
    # the cart-pole.
    return noise / jnp.maximum(jnp.std(noise, axis=-1, keepdims=True), 1e-6)


def make_planner(
    config: MPCConfig,
    model: Model,
    action_spec: ActionSpec,
    particle_init: Callable | None = None,
    terminal_value_fn: Callable | None = None,
) -> Planner:
    """Builds a planner (the arguments and errors are :func:`make_search`'s)."""
    init, search = make_search(config, model, action_spec, particle_init, terminal_value_fn)

    def plan(params, key, start, planner_state: PlannerState):
        result, new_state, _ = search(params, key, start, planner_state)
        return result, new_state

    return Planner(init, plan)


def make_search(
    config: MPCConfig,
    model: Model,
    action_spec: ActionSpec,
    particle_init: Callable | None = None,
    terminal_value_fn: Callable | None = None,
) -> tuple[Callable[[], PlannerState], Callable]:
    """The planner's ``init`` and ``search(params, key, state, planner_state) ->
    (PlanResult, PlannerState, elites [num_elites, H, ...])``: :func:`make_planner`'s
    ``plan`` that also returns the last iteration's elites, best first (what a
    hybrid planner refines further, :mod:`mbrl_jax.planners.gradient`).

    Args:
      config: :class:`MPCConfig`.
      model: any :class:`~mbrl_jax.core.types.Model` whose actions match
        ``action_spec``; ``plan``'s ``params`` are its params.
      action_spec: :class:`ActionSpec`.
      particle_init: optional ``(state, n) -> states [n]``; default broadcasts the
        start state (a pytree) ``n`` times.
      terminal_value_fn: optional ``(states [N]) -> [N]`` value of the state a
        rollout reaches after ``H`` steps, added (discounted, only if the
        rollout is still alive) to its return: MPC's terminal cost, an
        estimate of what lies beyond the horizon.

    Raises:
      ValueError: for a method that does not support discrete actions (MPPI,
        iCEM), or a config whose objective groups particles by member
        (``worst_member``, a disagreement bonus) without ``num_members``.
    """
    c = config
    if action_spec.discrete and c.method in ("mppi", "icem"):
        raise ValueError(
            f"MPCConfig.method {c.method!r} needs continuous actions; use 'cem' or 'random'"
        )
    if c.uses_members and c.num_members is None:
        raise ValueError(
            "MPCConfig.num_members must be set (the ensemble size) when objective is "
            "'worst_member' or disagreement_bonus is non-zero; got objective "
            f"{c.objective!r}, disagreement_bonus {c.disagreement_bonus}"
        )
    h, k, p = c.horizon, c.num_particles, c.population
    dim = action_spec.dim
    if not action_spec.discrete:
        low = jnp.asarray(action_spec.low, jnp.float32)
        high = jnp.asarray(action_spec.high, jnp.float32)
        centre, span = (low + high) / 2.0, high - low
    num_kept = int(round(c.keep_elites * c.num_elites)) if c.method == "icem" else 0
    use_elite_mean = (
        c.return_mean_elites and c.method in ("cem", "icem") and not action_spec.discrete
    )
    particle_init = particle_init or (
        lambda state, n: jax.tree.map(lambda x: jnp.broadcast_to(x, (n, *jnp.shape(x))), state)
    )

    bonus = c.disagreement_bonus != 0.0

    def disagreement(result, num):
        """Discounted sum over steps of the variance over member groups of the
        group-mean next state: ``Rollout [H, P' * K]`` -> ``[P']``."""
        e = c.num_members
        # The state after step t: the state before step t + 1, the final one last.
        after = jax.tree.map(
            lambda before, final: jnp.concatenate([before[1:], final[None]], 0),
            result.states,
            result.final_state,
        )
        x = jnp.concatenate(
            [
                leaf.reshape(h, num, k // e, e, -1).astype(jnp.float32)
                for leaf in jax.tree.leaves(after)
            ],
            axis=-1,
        )  # [H, P', K / E, E, D]: particle j = g * E + m follows member m
        spread = x.mean(2).var(2).mean(-1)  # [H, P']
        alive = result.mask.reshape(h, num, k).mean(-1)  # share of particles taking step t
        weights = c.discount ** jnp.arange(h, dtype=jnp.float32)
        return jnp.einsum("hp,hp,h->p", spread, alive, weights)

    def evaluate(params, key, start, actions):
        """``actions [P', H, ...]`` -> (objective [P'], std [P'], mean return [P'])."""
        num = actions.shape[0]
        states = particle_init(start, num * k)
        flat = jnp.repeat(actions, k, axis=0)  # particle j of candidate i at i * K + j
        result = rollout(
            model,
            lambda key, states, t: flat[:, t],
            params,
            key,
            states,
            h,
            discount=c.discount,
            keep_trajectory=bonus,
        )
        total = result.discounted_return
        if terminal_value_fn is not None:
            total = total + result.final_alive * (c.discount**h) * terminal_value_fn(
                result.final_state
            )
        returns = total.reshape(num, k)
        mean, std = returns.mean(-1), returns.std(-1)
        if c.objective == "worst_member":
            per_member = returns.reshape(num, k // c.num_members, c.num_members).mean(1)
            objective = per_member.min(-1) - c.beta * std
        else:
            objective = mean - c.beta * std
        if bonus:
            objective = objective + c.disagreement_bonus * disagreement(result, num)
        return objective, std, mean

    def init() -> PlannerState:
        if action_spec.discrete:
            mean = jnp.full((h, action_spec.num_actions), 1.0 / action_spec.num_actions)
        else:
            mean = jnp.broadcast_to(centre, (h, dim))
        return PlannerState(mean=mean, elites=jnp.zeros((num_kept, h, dim), jnp.float32))

    def sample(key, mean, std, kept):
        if action_spec.discrete:
            return jax.random.categorical(key, jnp.log(mean + 1e-9), axis=-1, shape=(p, h))
        if c.method == "random":
            return jax.random.uniform(key, (p, h, dim), minval=low, maxval=high)
        if c.method == "icem":
            noise = colored_noise(key, c.noise_exponent, (p, dim), h).transpose(0, 2, 1)
        elif c.method == "cem":
            # PETS's CEM: a normal truncated at 2 std, the std capped at half the
            # distance to the nearer bound, so samples stay inside the bounds
            # without piling up on them as clipping would.
            std = jnp.minimum(std, jnp.maximum(jnp.minimum(mean - low, high - mean) / 2, 1e-6))
            noise = jax.random.truncated_normal(key, -2.0, 2.0, (p, h, dim))
        else:
            noise = jax.random.normal(key, (p, h, dim))
        samples = jnp.clip(mean + std * noise, low, high)
        if num_kept:
            samples = samples.at[:num_kept].set(kept)
        return samples

    def plan(params, key, start, planner_state: PlannerState):
        mean = planner_state.mean
        if action_spec.discrete:
            # The warm start keeps the shifted probabilities but mixes the
            # uniform back in (weight ``init_std``, at most 1), as the continuous
            # planners restart from ``init_std``: probabilities that collapsed to
            # one action would otherwise never sample another one again.
            mix = min(c.init_std, 1.0)
            mean = (1.0 - mix) * mean + mix / action_spec.num_actions
        std = None if action_spec.discrete else jnp.broadcast_to(c.init_std * span, (h, dim))
        iterations = 1 if c.method == "random" else c.num_iterations
        best0 = (
            jnp.zeros((h,), jnp.int32)
            if action_spec.discrete
            else jnp.broadcast_to(centre, (h, dim)),
            jnp.float32(-jnp.inf),
            jnp.float32(0.0),
            jnp.float32(0.0),
        )

        def iteration(carry, inputs):
            mean, std, kept, best, _ = carry
            it_key, it = inputs
            sample_key, eval_key = jax.random.split(it_key)
            samples = sample(sample_key, mean, std, kept)
            if c.method == "icem" and not action_spec.discrete:
                # iCEM: the last iteration also tries the mean itself.
                samples = jnp.where(it == iterations - 1, samples.at[-1].set(mean), samples)
            objective, spread, mean_return = evaluate(params, eval_key, start, samples)
            objective = jnp.where(jnp.isfinite(objective), objective, -jnp.inf)
            top = jnp.argmax(objective)
            better = objective[top] > best[1]
            best = jax.tree.map(
                lambda new, old: jnp.where(better, new, old),
                (samples[top], objective[top], spread[top], mean_return[top]),
                best,
            )
            elite_idx = jax.lax.top_k(objective, c.num_elites)[1]
            elites = samples[elite_idx]
            if action_spec.discrete:
                freq = jax.nn.one_hot(elites, action_spec.num_actions).mean(0)
                mean = c.alpha * mean + (1 - c.alpha) * freq
            elif c.method == "mppi":
                weights = jax.nn.softmax((objective - objective[top]) / c.temperature)
                mean = jnp.einsum("p,pha->ha", weights, samples)
            elif c.method in ("cem", "icem"):
                mean = c.alpha * mean + (1 - c.alpha) * elites.mean(0)
                std = c.alpha * std + (1 - c.alpha) * elites.std(0)
            if num_kept:
                kept = elites[:num_kept]
            if use_elite_mean:
                best = (
                    elites.mean(0),
                    objective[elite_idx].mean(),
                    spread[elite_idx].mean(),
                    mean_return[elite_idx].mean(),
                )
            return (mean, std, kept, best, elites), objective[top]

        std0 = jnp.zeros((h, dim)) if std is None else std
        elites0 = jnp.zeros((c.num_elites, *best0[0].shape), best0[0].dtype)
        (mean, _, kept, best, elites), iteration_best = jax.lax.scan(
            iteration,
            (mean, std0, planner_state.elites, best0, elites0),
            (jax.random.split(key, iterations), jnp.arange(iterations)),
        )
        sequence, objective, spread, mean_return = best
        # Warm start: shift one step, fill the end with the initial guess.
        fresh = init()
        shifted_mean = jnp.concatenate([mean[1:], fresh.mean[-1:]], axis=0)
        if num_kept:
            kept = jnp.concatenate(
                [kept[:, 1:], jnp.broadcast_to(fresh.mean[-1:], (num_kept, 1, dim))], 1
            )
        result = PlanResult(sequence[0], sequence, objective, spread, iteration_best, mean_return)
        return result, PlannerState(mean=shifted_mean, elites=kept), elites

    return init, plan
