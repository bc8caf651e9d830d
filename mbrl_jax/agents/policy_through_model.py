"""Policy optimisation through a learned model: analytic gradients or evolution in the ensemble.

``train(key)`` runs ``random_trials`` trials of uniformly random actions, then,
for each remaining trial, fits the probabilistic ensemble on all data so far,
trains a deterministic policy network (an MLP whose output is tanh-squashed
to the action bounds) in the model, and runs one real episode with it.

The policy is trained on the model's predicted discounted return over
``horizon`` steps from start states drawn from the replay buffer and/or the
environment's initial states, rolled out by :func:`mbrl_jax.core.rollout`
with the policy as the rollout policy (TSinf or TS1 particles):

* ``optimizer="gradient"``: the return is differentiated through the
  reparameterised particles (analytic policy gradient, as PILCO does with
  its Gaussian process), ``policy_updates`` Adam steps with the gradient's
  global norm clipped;
* ``optimizer="cma_es"`` / ``"open_es"``: evosax's CMA-ES or OpenAI-ES over
  the flattened policy parameters, ``policy_updates`` generations of ask/tell
  in a ``lax.scan``, fitness the mean model return (every candidate on the
  same start states and model noise).

Rewards and terminations come from the environment registry's task
functions where it has them (:func:`mbrl_jax.envs.task_functions`), from the
ensemble's learned heads otherwise. ``jax.jit(jax.vmap(train))(keys)`` runs
many seeds at once.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from mbrl_jax.core.chunked import Chunked, EvalResult, as_train
from mbrl_jax.core.replay import ReplayBuffer, buffer_add, buffer_init, buffer_sample
from mbrl_jax.core.types import Array, PRNGKey, Transition
from mbrl_jax.core.validation import check_choice, check_range
from mbrl_jax.envs.registry import task_functions
from mbrl_jax.envs.tasks import TaskFunctions
from mbrl_jax.models.ensemble import EnsembleConfig, ensemble_model, make_ensemble
from mbrl_jax.models.wrappers import with_task
from mbrl_jax.planners.policy_search import (
    OPTIMIZERS,
    TanhPolicy,
    make_policy_optimiser,
    model_return_fn,
)

START_STATES = ("buffer", "initial", "mixed")


def default_model() -> EnsembleConfig:
    """5 probabilistic members of 3 x 200 SiLU layers, batch 32, 10% held out."""
    return EnsembleConfig(
        ensemble_size=5,
        num_elites=5,
        hidden_size=200,
        num_layers=3,
        batch_size=32,
        holdout_ratio=0.1,
    )


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings (validated on construction). Defaults are tuned on ``Pendulum-v1``.

    Attributes:
      num_trials: trials in total, random ones included.
      trial_length: steps per trial (episodes end earlier on termination).
      random_trials: leading trials of uniformly random actions, in ``[1, num_trials)``.
      num_epochs: ensemble training epochs before each policy trial.
      model: :class:`~mbrl_jax.models.ensemble.EnsembleConfig` (sizes read off
        the environment; reward/termination heads learned where no task
        function is known).
      propagation: ``"tsinf"`` or ``"ts1"`` (sampled particles) or ``"expectation"``.
      optimizer: ``"gradient"``, ``"cma_es"`` or ``"open_es"``.
      hidden_sizes: widths of the policy's tanh hidden layers (static).
      horizon: ``H`` model steps per imagined rollout (static).
      discount: discount of the imagined return, in ``(0, 1]``.
      num_particles: imagined rollouts per objective evaluation (one start
        state each), a multiple of ``model.ensemble_size`` for TSinf/TS1.
      start_states: ``"buffer"`` (observed states), ``"initial"`` (fresh
        ``env.reset`` states) or ``"mixed"`` (half each).
      policy_updates: gradient steps (``"gradient"``) or generations (ES) per trial.
      learning_rate: Adam's step size (``"gradient"``; OpenAI-ES's as well).
      max_grad_norm: the policy gradient's global norm is clipped to this, ``> 0``.
      population: candidates per ES generation, ``>= 2`` (even for OpenAI-ES).
      es_sigma: initial (CMA-ES) / constant (OpenAI-ES) search std, ``> 0``.
      exploration_noise: std of Gaussian noise added to real actions, as a
        fraction of half the action range, in ``[0, 1]``; ``0`` acts deterministically.
    """

    num_trials: int = 10
    trial_length: int = 200
    random_trials: int = 1
    num_epochs: int = 50
    model: EnsembleConfig = dataclasses.field(default_factory=default_model)
    propagation: str = "tsinf"
    optimizer: str = "gradient"
    hidden_sizes: tuple[int, ...] = (32,)
    horizon: int = 50
    discount: float = 0.99
    num_particles: int = 50
    start_states: str = "mixed"
    policy_updates: int = 300
    learning_rate: float = 1e-2
    max_grad_norm: float = 10.0
    population: int = 32
    es_sigma: float = 0.1
    exploration_noise: float = 0.0

    def __post_init__(self):
        for name in ("num_trials", "trial_length", "random_trials", "num_epochs"):
            check_range(self, name, low=1)
        if self.random_trials >= self.num_trials:
            raise ValueError(
                f"policy_through_model.Config.random_trials ({self.random_trials}) must be < "
                f"num_trials ({self.num_trials})"
            )
        for name in ("horizon", "num_particles", "policy_updates"):
            check_range(self, name, low=1)
        check_range(self, "population", low=2)
        check_range(self, "discount", low=0.0, high=1.0, low_open=True)
        check_range(self, "learning_rate", low=0.0, low_open=True)
        check_range(self, "max_grad_norm", low=0.0, low_open=True)
        check_range(self, "es_sigma", low=0.0, low_open=True)
        check_range(self, "exploration_noise", low=0.0, high=1.0)
        check_choice(self, "optimizer", OPTIMIZERS)
        check_choice(self, "start_states", START_STATES)
        check_choice(self, "propagation", ("tsinf", "ts1", "expectation"))
        if not isinstance(self.model, EnsembleConfig):
            raise ValueError(
                f"policy_through_model.Config.model must be an EnsembleConfig, got {self.model!r}"
            )
        sizes = self.hidden_sizes
        if not isinstance(sizes, tuple) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sizes
        ):
            raise ValueError(
                "policy_through_model.Config.hidden_sizes must be a tuple of integers >= 1, "
                f"got {sizes!r}"
            )
        if self.optimizer == "open_es" and self.population % 2:
            raise ValueError(
                f"policy_through_model.Config.population must be even for open_es, "
                f"got {self.population}"
            )
        if self.propagation != "expectation" and self.num_particles % self.model.ensemble_size:
            raise ValueError(
                f"policy_through_model.Config.num_particles ({self.num_particles}) must be a "
                f"multiple of model.ensemble_size ({self.model.ensemble_size}) for "
                f"{self.propagation}"
            )


class StepMetrics(NamedTuple):
    """Per-step record of the trials' first episodes, ``[num_trials * trial_length]`` each.

    Attributes:
      reward: reward of the step (0 outside the first episode of its trial).
      done: True at the last step of each trial's first episode.
      active: True for the steps of each trial's first episode.
    """

    reward: Array
    done: Array
    active: Array


class TrainOutput(NamedTuple):
    """Result of one run.

    Attributes:
      metrics: :class:`StepMetrics`.
      trial_returns: ``[num_trials]`` undiscounted return of each trial's first episode.
      trial_lengths: ``[num_trials]`` int32 steps of it.
      predicted_return: ``[num_trials]`` the model's undiscounted return of the
        trial's policy over ``trial_length`` steps from the episode's real
        initial state, mean over ``num_particles`` particles (0 for random trials).
      policy_loss: ``[num_trials, policy_updates]`` minus the mean imagined
        discounted return at each update (the ES population's mean; 0 for random trials).
      val_loss: ``[num_trials, E]`` ensemble validation loss after each fit (0 for random).
      step_rewards: ``[num_trials, trial_length]`` rewards of the first episodes.
      policy_params: the final policy's flax params.
    """

    metrics: StepMetrics
    trial_returns: Array
    trial_lengths: Array
    predicted_return: Array
    policy_loss: Array
    val_loss: Array
    step_rewards: Array
    policy_params: Any


class RunState(NamedTuple):
    """The run between trials."""

    buffer: ReplayBuffer
    ens_state: Any
    policy_params: Any
    key: PRNGKey
    trial: Array
    random_out: tuple
    last: EvalResult


def make_train(config: Config, env, env_params, task: TaskFunctions | None = None):
    """``train(key) -> TrainOutput``: :func:`make_chunked` in one call."""
    return as_train(make_chunked(config, env, env_params, task))


def make_chunked(config: Config, env, env_params, task: TaskFunctions | None = None) -> Chunked:
    """Builds the run: random trials in ``init``, one fit-optimise-act trial per unit.

    Args:
      config: :class:`Config`.
      env: gymnax environment with vector observations and continuous (Box) actions.
      env_params: its params.
      task: known reward/termination functions; default the registry's for
        ``env``; ``TaskFunctions()`` learns both.

    Raises:
      ValueError: bad settings, discrete actions or non-vector observations.
    """
    action_space = env.action_space(env_params)
    if hasattr(action_space, "n"):
        raise ValueError(
            f"env: policy_through_model trains a continuous policy and needs Box actions, "
            f"got {action_space!r}"
        )
    task = task if task is not None else (task_functions(env) or TaskFunctions())
    ens_config = dataclasses.replace(
        config.model.for_env(env, env_params),
        learn_reward=task.reward_fn is None,
        learn_termination=task.termination_fn is None,
    )
    ensemble = make_ensemble(ens_config)
    model = with_task(
        ensemble_model(ensemble, config.propagation, config.num_epochs),
        task.reward_fn,
        task.termination_fn,
    )
    obs_dim, action_dim = ens_config.obs_dim, ens_config.action_dim
    steps = config.trial_length
    shape = (action_dim,)
    low = jnp.broadcast_to(jnp.asarray(action_space.low, jnp.float32), shape)
    high = jnp.broadcast_to(jnp.asarray(action_space.high, jnp.float32), shape)
    network = TanhPolicy(tuple(config.hidden_sizes), tuple(low.tolist()), tuple(high.tolist()))
    examples = (jnp.zeros(obs_dim), jnp.zeros(shape))
    objective = model_return_fn(model, network.apply, config.horizon, config.discount, *examples)
    optimise = make_policy_optimiser(
        config.optimizer,
        objective,
        network.init(jax.random.key(0), jnp.zeros((1, obs_dim))),
        config.policy_updates,
        config.learning_rate,
        config.max_grad_norm,
        config.population,
        config.es_sigma,
    )
    evaluate_model = model_return_fn(model, network.apply, steps, 1.0, *examples)

    n = config.num_particles
    num_policy = config.num_trials - config.random_trials

    def sample_starts(key, buffer):
        """``[policy_updates, N, D]`` start states, all drawn at once (random
        draws inside the optimiser's loop would cost compile time)."""
        count = config.policy_updates * n
        buffer_key, reset_key = jax.random.split(key)
        observed = buffer_sample(buffer, buffer_key, count).state
        fresh = jax.vmap(env.reset, in_axes=(0, None))(
            jax.random.split(reset_key, count), env_params
        )[0]
        if config.start_states == "buffer":
            starts = observed
        elif config.start_states == "initial":
            starts = fresh
        else:
            starts = jnp.where((jnp.arange(count) % n < n // 2)[:, None], observed, fresh)
        return starts.reshape(config.policy_updates, n, obs_dim)

    def episode(key, act, keep_going=False):
        """One trial under ``act(key, obs) -> action``; with ``keep_going`` every
        step is kept (random data across auto-resets); returns and lengths are
        the first episode's."""
        reset_key, loop_key = jax.random.split(key)
        obs, env_state = env.reset(reset_key, env_params)

        def body(carry, step_keys):
            obs, env_state, alive = carry
            act_key, env_key = step_keys
            action = act(act_key, obs)
            next_obs, env_state, reward, terminated, truncated, info = env.step(
                env_key, env_state, action, env_params
            )
            transition = Transition(obs, action, reward, info["final_observation"], terminated)
            out = (transition, alive | keep_going, reward * alive, alive)
            alive = alive & ~(terminated | truncated)
            return (next_obs, env_state, alive), out

        _, (transitions, mask, rewards, first) = jax.lax.scan(
            body,
            (obs, env_state, jnp.bool_(True)),
            jax.random.split(loop_key, 2 * steps).reshape(steps, 2),
        )
        return transitions, mask, rewards, first.sum().astype(jnp.int32), obs

    def init_run(key: PRNGKey) -> RunState:
        ens_key, policy_key, random_key, run_key = jax.random.split(key, 4)
        example = Transition(
            jnp.zeros(obs_dim), jnp.zeros(shape), jnp.float32(0), jnp.zeros(obs_dim), jnp.bool_(0)
        )
        buffer = buffer_init(example, config.num_trials * steps)

        def random_trial(buffer, k):
            act = lambda kk, _obs: jax.random.uniform(kk, shape, minval=low, maxval=high)  # noqa: E731
            transitions, mask, rewards, length, _ = episode(k, act, keep_going=True)
            return buffer_add(buffer, transitions, mask), (rewards, length)

        buffer, random_out = jax.lax.scan(
            random_trial, buffer, jax.random.split(random_key, config.random_trials)
        )
        policy_params = network.init(policy_key, jnp.zeros((1, obs_dim)))
        last = EvalResult(random_out[0][-1].sum()[None], random_out[1][-1][None])
        return RunState(
            buffer, ensemble.init(ens_key), policy_params, run_key, jnp.int32(0), random_out, last
        )

    def unit(state: RunState):
        key = jax.random.split(state.key, num_policy)[state.trial]
        fit_key, opt_key, run_key, eval_key = jax.random.split(key, 4)
        ens_state, info = ensemble.fit(fit_key, state.ens_state, state.buffer, config.num_epochs)
        start_key, opt_key = jax.random.split(opt_key)
        starts = sample_starts(start_key, state.buffer)
        policy_params, loss = optimise(opt_key, state.policy_params, ens_state, starts)
        scale = config.exploration_noise * 0.5 * (high - low)

        def act(k, obs):
            action = network.apply(policy_params, obs)
            if config.exploration_noise > 0:
                action = jnp.clip(action + scale * jax.random.normal(k, shape), low, high)
            return action

        transitions, mask, rewards, length, obs0 = episode(run_key, act)
        starts = jnp.broadcast_to(obs0, (n, obs_dim))
        predicted = evaluate_model(policy_params, ens_state, eval_key, starts)
        new = state._replace(
            buffer=buffer_add(state.buffer, transitions, mask),
            ens_state=ens_state,
            policy_params=policy_params,
            trial=state.trial + 1,
            last=EvalResult(rewards.sum()[None], length[None]),
        )
        return new, (rewards, length, predicted, loss, info.val_loss)

    def finish(state: RunState, outs):
        rewards, lengths, predicted, loss, val_loss = outs
        r_rewards, r_lengths = state.random_out
        zeros = lambda x: jnp.zeros((config.random_trials, *x.shape[1:]), x.dtype)  # noqa: E731
        step_rewards = jnp.concatenate([r_rewards, rewards])
        lengths = jnp.concatenate([r_lengths, lengths])
        active = jnp.arange(steps)[None, :] < lengths[:, None]
        done = jnp.arange(steps)[None, :] == (lengths[:, None] - 1)
        return state, TrainOutput(
            metrics=StepMetrics(step_rewards.reshape(-1), done.reshape(-1), active.reshape(-1)),
            trial_returns=step_rewards.sum(-1),
            trial_lengths=lengths,
            predicted_return=jnp.concatenate([zeros(predicted), predicted]),
            policy_loss=jnp.concatenate([zeros(loss), loss]),
            val_loss=jnp.concatenate([zeros(val_loss), val_loss]),
            step_rewards=step_rewards,
            policy_params=state.policy_params,
        )

    def stream(outs):
        rewards, lengths = outs[0], outs[1]
        return rewards.reshape(-1), (jnp.arange(steps)[None, :] == (lengths[:, None] - 1)).reshape(
            -1
        )

    return Chunked(
        init=init_run,
        unit=unit,
        finish=finish,
        num_units=num_policy,
        unit_steps=steps,
        initial_steps=config.random_trials * steps,
        evaluate=lambda state, _key, _num_episodes=1: state.last,
        eval_note="the last trial (the policy acts deterministically unless exploration_noise > 0)",
        stream=stream,
    )
