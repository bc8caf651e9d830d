"""Agents of the comparison runner, each registered under a short name.

A spec is ``name`` or ``name:ARG`` (``dyna_q:50`` = Dyna-Q with 50 planning
steps). Each registered builder turns a spec into an :class:`AgentRun`: a
``train(key)`` for one seed and a description. Every agent's output follows
one convention -- a ``metrics`` field of per-step arrays over real
environment steps, with ``reward`` and ``done`` and optionally ``active``,
``planning_updates`` and ``q_updates`` -- so :func:`extract` reads them all.
New agents register the same way with :func:`register`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

from mbrl_jax.core.chunked import Chunked, as_train


@dataclasses.dataclass(frozen=True)
class Budget:
    """How long each seed runs: ``num_steps`` environment steps, optionally cut at ``episodes``.

    ``explicit_steps`` is false when ``num_steps`` is the runner's default rather
    than the user's choice; agents with a budget of their own (AlphaZero,
    MuZero) then keep theirs.
    """

    num_steps: int
    episodes: int | None = None
    explicit_steps: bool = True


@dataclasses.dataclass(frozen=True)
class CommonSettings:
    """Hyper-parameters shared by the tabular agents of a comparison."""

    learning_rate: float = 0.1
    epsilon: float = 0.1
    discount: float = 0.95
    kappa: float = 1e-3
    theta: float = 1e-4
    #: PETS's planner: ``"shooting"``, ``"gradient"`` or ``"cem_gradient"``.
    planner: str = "shooting"


class AgentRun(NamedTuple):
    """What the runner needs of an agent.

    Attributes:
      train: ``train(key) -> output`` for one seed (the runner vmaps and jits it);
        the output has a ``metrics`` field read by :func:`extract`.
      description: one line for the table.
      real_steps: real environment steps per seed the run will take (at most,
        under an episode cap), all parallel environments counted; ``None``
        means the budget's ``num_steps``.
      parallel_envs: environments stepped in lockstep per seed whose first one
        the ``metrics`` follow (1 for single-environment agents).
      chunked: the same run as a :class:`~mbrl_jax.core.chunked.Chunked`
        (``train`` is ``as_train`` of it): the runner drives it chunk by chunk
        for progress, evaluation and checkpoints.
    """

    train: Callable[[jax.Array], Any]
    description: str
    real_steps: int | None = None
    parallel_envs: int = 1
    chunked: Chunked | None = None

    @classmethod
    def of(cls, chunked: Chunked, description: str, **kwargs) -> AgentRun:
        """The run of a :class:`~mbrl_jax.core.chunked.Chunked` agent."""
        return cls(as_train(chunked), description, chunked=chunked, **kwargs)


def extract(out) -> dict:
    """Per-seed step streams from a batched output's ``metrics``.

    Reads ``reward`` and ``done`` ``[seeds, T]``; where ``active`` is present
    only the active steps count (they are moved to the front, the rest
    zero-padded); ``planning_updates`` and ``q_updates`` are summed per seed
    (zeros where the agent has none).

    Returns:
      dict of NumPy arrays: ``reward``, ``done`` ``[seeds, T]``,
      ``planning_updates``, ``q_updates`` ``[seeds]``.
    """
    m = out.metrics
    reward = np.asarray(m.reward, np.float32)
    done = np.asarray(m.done, bool)
    if hasattr(m, "active"):
        active = np.asarray(m.active, bool)
        order = np.argsort(~active, axis=1, kind="stable")  # active steps first, in order
        reward = np.where(
            np.take_along_axis(active, order, 1), np.take_along_axis(reward, order, 1), 0
        )
        done = np.take_along_axis(done & active, order, 1)
    seeds = reward.shape[0]

    def total(name):
        if not hasattr(m, name):
            return np.zeros(seeds)
        return np.asarray(getattr(m, name)).sum(axis=1)

    return {
        "reward": reward.astype(np.float32),
        "done": done,
        "planning_updates": total("planning_updates"),
        "q_updates": total("q_updates"),
    }


Builder = Callable[[str | None, Any, Any, Budget, CommonSettings], AgentRun]
_REGISTRY: dict[str, tuple[Builder, str, str]] = {}


def register(name: str, usage: str, summary: str = "") -> Callable[[Builder], Builder]:
    """Decorator registering ``builder(arg, env, env_params, budget, settings) -> AgentRun``
    under ``name``, shown as ``usage`` with a one-line ``summary`` in ``--help``."""

    def wrap(builder: Builder) -> Builder:
        _REGISTRY[name] = (builder, usage, summary)
        return builder

    return wrap


def agent_names() -> list[str]:
    """Usage strings of every registered agent (``dyna_q:N``, ...)."""
    return [usage for _, usage, _ in _REGISTRY.values()]


def agent_summaries() -> list[tuple[str, str]]:
    """``(usage, one-line summary)`` of every registered agent."""
    return [(usage, summary) for _, usage, summary in _REGISTRY.values()]


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Splits ``name:arg``; raises ``ValueError`` for unknown names."""
    name, _, arg = spec.strip().partition(":")
    if name not in _REGISTRY:
        raise ValueError(f"unknown agent {spec!r}; valid: {', '.join(agent_names())}")
    return name, (arg or None)


def build(spec: str, env, env_params, budget: Budget, settings: CommonSettings) -> AgentRun:
    """Builds the :class:`AgentRun` of one spec."""
    name, arg = parse_spec(spec)
    builder = _REGISTRY[name][0]
    return builder(arg, env, env_params, budget, settings)


def _int_arg(arg: str | None, default: int, spec: str) -> int:
    if arg is None:
        return default
    try:
        value = int(arg)
    except ValueError:
        raise ValueError(f"agent {spec!r}: expected an integer after ':', got {arg!r}") from None
    if value < 0:
        raise ValueError(f"agent {spec!r}: the number after ':' must be >= 0, got {value}")
    return value


def _dyna_run(n: int, kappa: float, env, env_params, budget, settings, label: str) -> AgentRun:
    from mbrl_jax.agents import dyna_q

    config = dyna_q.Config(
        num_steps=budget.num_steps,
        planning_steps=n,
        learning_rate=settings.learning_rate,
        epsilon=settings.epsilon,
        discount=settings.discount,
        kappa=kappa,
        max_episodes=budget.episodes,
    )
    return AgentRun.of(dyna_q.make_chunked(config, env, env_params), label)


@register("q_learning", "q_learning", "tabular Q-learning, no model (Dyna-Q with n = 0)")
def _q_learning(arg, env, env_params, budget, settings):
    if arg is not None:
        raise ValueError(f"agent 'q_learning' takes no argument, got {arg!r}")
    return _dyna_run(0, 0.0, env, env_params, budget, settings, "one-step Q-learning")


@register("dyna_q", "dyna_q:N", "Dyna-Q with N planning updates per real step (default 5)")
def _dyna_q(arg, env, env_params, budget, settings):
    n = _int_arg(arg, 5, f"dyna_q:{arg}")
    return _dyna_run(n, 0.0, env, env_params, budget, settings, f"Dyna-Q, {n} planning steps")


@register(
    "dyna_q_plus", "dyna_q_plus:N", "Dyna-Q+ (bonus kappa), N planning updates per step (default 5)"
)
def _dyna_q_plus(arg, env, env_params, budget, settings):
    n = _int_arg(arg, 5, f"dyna_q_plus:{arg}")
    label = f"Dyna-Q+, {n} planning steps, kappa {settings.kappa:g}"
    return _dyna_run(n, settings.kappa, env, env_params, budget, settings, label)


@register(
    "prioritized_sweeping",
    "prioritized_sweeping:N",
    "prioritized sweeping, <= N queue updates per step (default 5)",
)
def _prioritized_sweeping(arg, env, env_params, budget, settings):
    from mbrl_jax.agents import prioritized_sweeping as ps

    n = _int_arg(arg, 5, f"prioritized_sweeping:{arg}")
    config = ps.Config(
        num_steps=budget.num_steps,
        planning_steps=n,
        learning_rate=settings.learning_rate,
        epsilon=settings.epsilon,
        discount=settings.discount,
        theta=settings.theta,
        max_episodes=budget.episodes,
    )
    label = f"prioritized sweeping, <= {n} updates/step, theta {settings.theta:g}"
    return AgentRun.of(ps.make_chunked(config, env, env_params), label)


@register(
    "pets",
    "pets:PLANNER",
    "PETS: probabilistic ensemble and MPC in it; PLANNER shooting (iCEM/CEM, default), "
    "gradient or cem_gradient",
)
def _pets(arg, env, env_params, budget, settings):
    from mbrl_jax.agents import pets

    planner = (arg or settings.planner).replace("-", "_")
    if planner not in pets.PLANNER_CHOICES:
        raise ValueError(
            f"agent 'pets:{arg}': the planner must be one of {', '.join(pets.PLANNER_CHOICES)}"
        )
    max_steps = int(getattr(env_params, "max_steps_in_episode", 200))
    trials = (
        budget.episodes if budget.episodes is not None else max(2, budget.num_steps // max_steps)
    )
    if trials < 2:
        raise ValueError("agent 'pets' needs at least 2 trials (--episodes 2 or more)")
    config = dataclasses.replace(
        pets.preset(env.name, planner),
        num_trials=trials,
        trial_length=min(max_steps, budget.num_steps),
    )
    chunked = pets.make_chunked(config, env, env_params)
    real = config.num_trials * config.trial_length
    p = config.planner
    search = (
        f"population {p.population}"
        if planner == "shooting"
        else f"{p.num_sequences} sequences x {p.num_iterations} Adam steps"
    )
    label = (
        f"PETS: {real} real steps = {config.num_trials} trials x {config.trial_length}, "
        f"{config.model.ensemble_size}-member ensemble, {p.method} "
        f"({search}, horizon {p.horizon})"
    )
    return AgentRun.of(chunked, label, real_steps=real)


@register(
    "mcts", "mcts:SIMS", "MCTS with the true environment as model, SIMS simulations (default 200)"
)
def _mcts(arg, env, env_params, budget, settings):
    from mbrl_jax.agents import mcts

    sims = _int_arg(arg, 200, f"mcts:{arg}")
    if sims < 1:
        raise ValueError(f"agent 'mcts:{arg}': the number of simulations must be >= 1")
    default = mcts.Config()
    config = mcts.Config(
        num_steps=budget.num_steps,
        max_episodes=budget.episodes,
        search=dataclasses.replace(default.search, num_simulations=sims),
    )
    label = (
        f"MCTS (UCB1, true model), {sims} simulations, "
        f"{config.num_rollouts} rollouts x {config.rollout_depth} steps per leaf"
    )
    return AgentRun.of(mcts.make_chunked(config, env, env_params), label)


def _search_agent(module, name: str, arg, env, budget) -> tuple[Any, str, int]:
    if arg is not None:
        raise ValueError(f"agent {name!r} takes no argument, got {arg!r}")
    if budget.episodes is not None:
        raise ValueError(
            f"agent {name!r} trains on many environments in rounds and has no episode "
            "budget; give --steps (real environment steps per seed) instead of --episodes"
        )
    default = module.Config()
    iterations = default.num_iterations
    per_iteration = default.num_envs * default.unroll_length
    if budget.explicit_steps:
        # --steps counts every real step of every parallel environment, as for
        # the single-environment agents; whole rounds, at least one.
        iterations = max(1, budget.num_steps // per_iteration)
    config = dataclasses.replace(default, num_iterations=iterations)
    real = iterations * per_iteration
    label = (
        f"{name}: {real} real steps = {config.num_envs} envs x "
        f"{iterations * config.unroll_length} (curves: env 0), {config.search.policy} "
        f"search, {config.search.num_simulations} simulations"
    )
    return config, label, real


def _vector_env(env, env_params, label: str):
    """A maze (state-index observations) wrapped to one-hot vectors for the
    neural search agents; other environments as they are."""
    from gymnax.environments import spaces

    from mbrl_jax.envs import VectorObservation

    if isinstance(env.observation_space(env_params), spaces.Discrete):
        return VectorObservation(env), f"{label}, one-hot observations"
    return env, label


@register("alphazero", "alphazero", "AlphaZero: search in the true model with a policy/value net")
def _alphazero(arg, env, env_params, budget, settings):
    from mbrl_jax.agents import alphazero

    config, label, real = _search_agent(alphazero, "alphazero", arg, env, budget)
    env, label = _vector_env(env, env_params, label)
    chunked = alphazero.make_chunked(config, env, env_params)
    return AgentRun.of(chunked, label, real_steps=real, parallel_envs=config.num_envs)


@register("muzero", "muzero", "MuZero: Gumbel search in a learned latent model")
def _muzero(arg, env, env_params, budget, settings):
    from mbrl_jax.agents import muzero

    config, label, real = _search_agent(muzero, "muzero", arg, env, budget)
    env, label = _vector_env(env, env_params, label)
    chunked = muzero.make_chunked(config, env, env_params)
    return AgentRun.of(chunked, label, real_steps=real, parallel_envs=config.num_envs)


def _no_arg_steps_only(name: str, arg, budget) -> None:
    if arg is not None:
        raise ValueError(f"agent {name!r} takes no argument, got {arg!r}")
    if budget.episodes is not None:
        raise ValueError(
            f"agent {name!r} has no episode budget; give --steps (real environment steps "
            "per seed) instead of --episodes"
        )


def budgeted(config, budget):
    """``config`` with ``num_steps`` = the budget and ``learning_starts`` at most
    a fifth of it (so a short run still learns)."""
    return dataclasses.replace(
        config,
        num_steps=budget.num_steps,
        learning_starts=min(config.learning_starts, max(1, budget.num_steps // 5)),
    )


@register("sac", "sac", "SAC: soft actor-critic (model-free, continuous actions)")
def _sac(arg, env, env_params, budget, settings):
    from mbrl_jax.agents import sac

    _no_arg_steps_only("sac", arg, budget)
    config = budgeted(sac.Config(), budget)
    label = (
        f"SAC: {config.num_steps} real steps, MLP {config.hidden_sizes}, "
        f"UTD {config.updates_per_step}, {config.learning_starts} random steps first"
    )
    return AgentRun.of(sac.make_chunked(config, env, env_params), label)


@register("mbpo", "mbpo", "MBPO: SAC on branched rollouts of a learned ensemble (UTD 20)")
def _mbpo(arg, env, env_params, budget, settings):
    from mbrl_jax.agents import mbpo

    _no_arg_steps_only("mbpo", arg, budget)
    config = budgeted(mbpo.Config(), budget)
    label = (
        f"MBPO: {config.num_steps} real steps, {config.model.ensemble_size}-member ensemble "
        f"refitted every {config.model_train_freq} steps, {config.rollout_batch_size} "
        f"rollouts of k={config.rollout_schedule[2]}..{config.rollout_schedule[3]}, "
        f"UTD {config.updates_per_step}, real ratio {config.real_ratio}"
    )
    return AgentRun.of(mbpo.make_chunked(config, env, env_params), label)


@register("dqn", "dqn", "DQN: double DQN with a Polyak target (model-free, discrete actions)")
def _dqn(arg, env, env_params, budget, settings):
    from mbrl_jax.agents import dqn

    _no_arg_steps_only("dqn", arg, budget)
    config = budgeted(dqn.Config(), budget)
    label = (
        f"DQN: {config.num_steps} real steps, MLP {config.hidden_sizes}, double targets, "
        f"epsilon {config.epsilon_start:g} -> {config.epsilon_end:g} over "
        f"{config.exploration_fraction:.0%} of the run"
    )
    return AgentRun.of(dqn.make_chunked(config, env, env_params), label)


@register("dyna_dqn", "dyna_dqn", "Dyna-DQN: DQN whose replay adds short ensemble rollouts")
def _dyna_dqn(arg, env, env_params, budget, settings):
    from mbrl_jax.agents import dyna_dqn

    _no_arg_steps_only("dyna_dqn", arg, budget)
    default = dyna_dqn.Config()
    config = dataclasses.replace(default, dqn=budgeted(default.dqn, budget))
    label = (
        f"Dyna-DQN: {config.dqn.num_steps} real steps, {config.model.ensemble_size}-member "
        f"ensemble refitted every {config.model_train_freq} steps, {config.rollout_batch} "
        f"rollouts x {config.rollout_length} steps, real ratio {config.real_ratio}"
    )
    return AgentRun.of(dyna_dqn.make_chunked(config, env, env_params), label)


@register(
    "policy_through_model",
    "policy_through_model:OPT",
    "a policy trained in a learned ensemble; OPT gradient (backprop through the model, "
    "default), cma_es or open_es",
)
def _policy_through_model(arg, env, env_params, budget, settings):
    from mbrl_jax.agents import policy_through_model as ptm

    optimizer = arg or "gradient"
    if optimizer not in ptm.OPTIMIZERS:
        raise ValueError(
            f"agent 'policy_through_model:{arg}': the optimizer must be one of "
            f"{', '.join(ptm.OPTIMIZERS)}"
        )
    default = ptm.Config()
    max_steps = int(getattr(env_params, "max_steps_in_episode", default.trial_length))
    length = min(max_steps, budget.num_steps)
    trials = budget.episodes if budget.episodes is not None else budget.num_steps // length
    if trials < 2:
        raise ValueError(
            "agent 'policy_through_model' needs at least 2 trials (a random one first): "
            f"--steps >= {2 * length} or --episodes 2 or more"
        )
    config = dataclasses.replace(
        default, num_trials=trials, trial_length=length, optimizer=optimizer
    )
    chunked = ptm.make_chunked(config, env, env_params)
    real = config.num_trials * config.trial_length
    label = (
        f"policy through the model ({optimizer}): {real} real steps = {trials} trials x "
        f"{length}, {config.model.ensemble_size}-member ensemble, horizon {config.horizon}, "
        f"{config.policy_updates} {'updates' if optimizer == 'gradient' else 'generations'} "
        "per trial"
    )
    return AgentRun.of(chunked, label, real_steps=real)


@register(
    "world_models",
    "world_models",
    "World Models: VAE + MDN-RNN, a linear controller found by CMA-ES in the dream",
)
def _world_models(arg, env, env_params, budget, settings):
    from mbrl_jax.agents import world_models

    _no_arg_steps_only("world_models", arg, budget)
    default = world_models.Config()
    config = dataclasses.replace(default, num_steps=budget.num_steps)
    label = (
        f"World Models: {config.num_steps} real steps in {config.num_iterations} rounds, "
        f"V latent {config.latent_size}, M {config.rnn_hidden} LSTM units x "
        f"{config.num_mixtures} Gaussians, CMA-ES {config.population} x {config.num_rollouts} "
        f"dreams of {config.horizon} steps at tau {config.tau:g}"
    )
    real = config.iteration_steps * config.num_iterations  # whole rounds
    chunked = world_models.make_chunked(config, env, env_params)
    return AgentRun.of(chunked, label, real_steps=real)


@register(
    "dreamer",
    "dreamer:OBS",
    "Dreamer: RSSM world model, actor-critic in its imagination; OBS states (default) "
    "or pixels (64 x 64 frames drawn in JAX)",
)
def _dreamer(arg, env, env_params, budget, settings):
    from mbrl_jax.agents import dreamer
    from mbrl_jax.envs.pixels import PixelObservation

    observations = arg or "states"
    if observations not in ("states", "pixels"):
        raise ValueError(f"agent 'dreamer:{arg}': OBS must be states or pixels")
    if budget.episodes is not None:
        raise ValueError(
            "agent 'dreamer' has no episode budget; give --steps (real environment steps "
            "per seed) instead of --episodes"
        )
    if observations == "pixels":
        env = PixelObservation(env, size=64)
    default = dreamer.Config()
    n = default.num_envs
    if budget.num_steps < n * default.collect_steps:
        raise ValueError(
            f"agent 'dreamer' needs --steps >= {n * default.collect_steps} "
            f"({n} environments x {default.collect_steps} steps per unit)"
        )
    # Whole steps of all environments: the budget rounded down to a multiple of n.
    config = budgeted(default, dataclasses.replace(budget, num_steps=budget.num_steps // n * n))
    label = (
        f"Dreamer ({observations}): {config.num_steps} real steps = {n} envs x "
        f"{config.num_steps // n} (curves: env 0), RSSM {config.model_size} "
        f"{config.stoch}x{config.classes} latents, train ratio {config.effective_train_ratio:g}, "
        f"imagination {config.horizon} steps"
    )
    chunked = dreamer.make_chunked(config, env, env_params)
    return AgentRun.of(chunked, label, real_steps=config.num_steps, parallel_envs=n)
