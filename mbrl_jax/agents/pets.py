"""PETS: probabilistic ensembles with trajectory sampling (Chua et al., 2018), compiled end to end.

``train(key)`` runs ``random_trials`` trials of uniformly random actions (each
``trial_length`` steps, resetting whenever an episode ends, as mbrl-lib's
examples collect their initial data; the trial's return is its first
episode's), then,
for each remaining trial, fits the ensemble on all data so far and runs one
episode with MPC, replanning at every step. Trials are ``lax.scan``s over
steps, the MPC trials a ``lax.scan`` over trials, so
``jax.jit(jax.vmap(train))(keys)`` runs many seeds at once.

Rewards and terminations come from the task functions given, by default
those the environment registry knows for the environment
(:func:`mbrl_jax.envs.task_functions`), or from the model's learned heads
where there are none. The planner plans through the ensemble as a
:class:`~mbrl_jax.core.types.Model` (:func:`~mbrl_jax.models.ensemble_model`
wrapped by :func:`~mbrl_jax.models.with_task`).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from mbrl_jax.core.chunked import Chunked, EvalResult, as_train
from mbrl_jax.core.replay import ReplayBuffer, buffer_add, buffer_init
from mbrl_jax.core.types import Array, PRNGKey, Transition
from mbrl_jax.core.validation import check_choice, check_range
from mbrl_jax.envs.registry import task_functions
from mbrl_jax.envs.tasks import TaskFunctions
from mbrl_jax.models.ensemble import (
    PROPAGATION_MODES,
    EnsembleConfig,
    EnsembleState,
    ensemble_model,
    make_ensemble,
)
from mbrl_jax.models.wrappers import with_task
from mbrl_jax.planners.gradient import GradientConfig, make_any_planner
from mbrl_jax.planners.shooting import ActionSpec, MPCConfig


def default_model() -> EnsembleConfig:
    """PETS's ensemble: 5 probabilistic members of 3 x 200 SiLU layers, batch 32,
    10% held out. Observation and action sizes are filled in from the environment."""
    return EnsembleConfig(
        ensemble_size=5,
        num_elites=5,
        hidden_size=200,
        num_layers=3,
        probabilistic=True,
        learning_rate=1e-3,
        weight_decay=5e-5,
        batch_size=32,
        holdout_ratio=0.1,
    )


def default_planner() -> MPCConfig:
    """iCEM, population 100, 10 elites, 3 iterations, 5 particles, horizon 15."""
    return MPCConfig(
        method="icem",
        horizon=15,
        population=100,
        num_iterations=3,
        num_elites=10,
        num_particles=5,
        alpha=0.1,
    )


@dataclasses.dataclass(frozen=True)
class Config:
    """PETS settings (validated on construction). Defaults solve the continuous cart-pole.

    Attributes:
      num_trials: trials in total, random ones included.
      trial_length: steps per trial (episodes end earlier on termination).
      random_trials: leading trials of uniformly random actions, ``>= 1``.
      num_epochs: ensemble training epochs before each MPC trial.
      model: :class:`~mbrl_jax.models.ensemble.EnsembleConfig` (sizes are read
        off the environment; ``learn_reward``/``learn_termination`` follow the
        task functions available). Default :func:`default_model`.
      propagation: ``"tsinf"``, ``"ts1"`` or ``"expectation"``.
      state_cost: weight of the task's known state cost
        (:class:`~mbrl_jax.envs.tasks.TaskFunctions`, where it has one: the
        cart-poles) subtracted from the planning reward at every step, ``>= 0``.
        It steers plans to the states the data cover; the returns reported
        are the environment's own. On ``ContinuousCartPole`` (5 seeds) the
        first MPC trial returns 156 on average without it and 200 in every
        seed with it.
      terminal_cost: weight of the same cost at the end of the horizon, ``>= 0``.
      planner: :class:`mbrl_jax.planners.shooting.MPCConfig` (shooting: random,
        CEM, MPPI, iCEM) or :class:`mbrl_jax.planners.gradient.GradientConfig`
        (Adam through the ensemble, or CEM then Adam; continuous actions).
        Default :func:`default_planner`. Its ``num_members``, where the objective
        needs it (``worst_member``, a disagreement bonus; TSinf only), is
        filled in with the ensemble size (:func:`planner_config`).
    """

    num_trials: int = 3
    trial_length: int = 200
    random_trials: int = 1
    num_epochs: int = 50
    model: EnsembleConfig = dataclasses.field(default_factory=default_model)
    propagation: str = "tsinf"
    state_cost: float = 0.1
    terminal_cost: float = 0.0
    planner: MPCConfig | GradientConfig = dataclasses.field(default_factory=default_planner)

    def __post_init__(self):
        for name in ("num_trials", "trial_length", "random_trials", "num_epochs"):
            check_range(self, name, low=1)
        if self.random_trials >= self.num_trials:
            raise ValueError(
                f"pets.Config.random_trials ({self.random_trials}) must be < num_trials "
                f"({self.num_trials})"
            )
        for name in ("state_cost", "terminal_cost"):
            check_range(self, name, low=0.0)
        check_choice(self, "propagation", PROPAGATION_MODES)
        if not isinstance(self.model, EnsembleConfig):
            raise ValueError(f"pets.Config.model must be an EnsembleConfig, got {self.model!r}")
        if not isinstance(self.planner, MPCConfig | GradientConfig):
            raise ValueError(
                "pets.Config.planner must be an MPCConfig or a GradientConfig, got "
                f"{self.planner!r}"
            )
        if self.propagation != "expectation" and (
            self.planner.num_particles % self.model.ensemble_size
        ):
            raise ValueError(
                f"pets.Config: planner.num_particles ({self.planner.num_particles}) must be a "
                f"multiple of model.ensemble_size ({self.model.ensemble_size}) for "
                f"{self.propagation}"
            )


PLANNER_CHOICES = ("shooting", "gradient", "cem_gradient")


def preset(env_name: str, planner: str = "shooting") -> Config:
    """Settings for an environment: :class:`Config`'s defaults (the continuous
    cart-pole's), changed where the environment needs it.

    * ``CartPole-v1``: discrete actions, so CEM over per-step categorical
      distributions (population 100, 10 elites, 3 iterations, horizon 20),
      500-step trials, 10 trials.
    * ``Pendulum-v1``: iCEM with horizon 25 (the swing-up needs to see past
      the first push), 15 trials of 200 steps.

    Unknown names get :class:`Config`'s defaults.

    Args:
      env_name: the environment's registered name.
      planner: ``"shooting"`` (the preset's iCEM or CEM), ``"gradient"`` or
        ``"cem_gradient"`` (:class:`~mbrl_jax.planners.gradient.GradientConfig`'s
        defaults at the preset's horizon: 4 sequences x 5 particles x 15 Adam
        steps = 300 rollouts per action, a fifth of iCEM's 1,500).

    Raises:
      ValueError: an unknown ``planner``, or a gradient planner for
        ``CartPole-v1`` (discrete actions).
    """
    if planner not in PLANNER_CHOICES:
        raise ValueError(f"pets.preset: planner must be one of {PLANNER_CHOICES}, got {planner!r}")
    config = Config()
    if env_name == "CartPole-v1":
        shooting = dataclasses.replace(config.planner, method="cem", horizon=20)
        config = dataclasses.replace(config, num_trials=10, trial_length=500, planner=shooting)
    elif env_name == "Pendulum-v1":
        shooting = dataclasses.replace(config.planner, horizon=25)
        config = dataclasses.replace(config, num_trials=15, planner=shooting)
    if planner == "shooting":
        return config
    if env_name == "CartPole-v1":
        raise ValueError(
            f"pets.preset: planner {planner!r} needs continuous actions; CartPole-v1 has "
            "discrete ones (use ContinuousCartPole, or planner 'shooting')"
        )
    gradient = GradientConfig(method=planner, horizon=config.planner.horizon)
    return dataclasses.replace(config, planner=gradient)


class StepMetrics(NamedTuple):
    """Per-step record of the trials' first episodes, ``[num_trials * trial_length]`` each.

    Attributes:
      reward: reward of the step (0 outside the first episode of its trial).
      done: True at the last step of each trial's first episode.
      active: True for the steps of each trial's first episode (what the
        learning curve counts; the rest of a random trial only collects data).
    """

    reward: Array
    done: Array
    active: Array


class TrainOutput(NamedTuple):
    """Result of one PETS run.

    Attributes:
      metrics: :class:`StepMetrics`.
      trial_returns: ``[num_trials]`` undiscounted return of each trial.
      trial_lengths: ``[num_trials]`` int32 steps before termination or the limit.
      val_loss: ``[num_trials, E]`` validation loss of each member after the fit
        preceding each trial (zeros for random trials).
      train_loss: ``[num_trials, num_epochs]`` mean training loss per epoch.
      predicted_return: ``[num_trials, trial_length]`` planner objective at each step.
      step_rewards: ``[num_trials, trial_length]`` reward of each step of the
        trial's first episode (zero after it ends).
      observations: ``[num_trials, trial_length, D]`` observation before each
        step (of the episodes that follow after the first ends; ``trial_lengths``
        says where).
      ensemble: the final :class:`~mbrl_jax.models.ensemble.EnsembleState`
        (a :class:`~mbrl_jax.models.sampled.SampledState` for
        ``EnsembleConfig.uncertainty`` ``"dropout"`` or ``"bayesian"``).
    """

    metrics: StepMetrics
    trial_returns: Array
    trial_lengths: Array
    val_loss: Array
    train_loss: Array
    predicted_return: Array
    step_rewards: Array
    observations: Array
    ensemble: EnsembleState


def planner_config(config: Config, ensemble_size: int) -> MPCConfig | GradientConfig:
    """``config.planner`` with ``num_members`` filled in with ``ensemble_size``
    where the planner groups particles by member (``worst_member``, a
    disagreement bonus) and it is unset.

    Raises:
      ValueError: such a planner without TSinf propagation (only TSinf keeps
        particle ``j`` on member ``j mod E``), with ``num_particles`` not a
        multiple of ``ensemble_size``, or with another ``num_members``.
    """
    mpc = config.planner
    if not mpc.uses_members:
        return mpc
    if config.propagation != "tsinf":
        raise ValueError(
            f"pets.Config: planner objective {mpc.objective!r} / disagreement_bonus "
            f"{mpc.disagreement_bonus} groups particles by member and needs propagation "
            f"'tsinf', got {config.propagation!r}"
        )
    if mpc.num_particles % ensemble_size:
        raise ValueError(
            f"pets.Config: planner.num_particles ({mpc.num_particles}) must be a multiple of "
            f"model.ensemble_size ({ensemble_size})"
        )
    if mpc.num_members is None:
        return dataclasses.replace(mpc, num_members=ensemble_size)
    if mpc.num_members != ensemble_size:
        raise ValueError(
            f"pets.Config: planner.num_members ({mpc.num_members}) must equal "
            f"model.ensemble_size ({ensemble_size}) or be None"
        )
    return mpc


def make_train(
    config: Config,
    env,
    env_params,
    task: TaskFunctions | None = None,
    terminal_value_fn=None,
):
    """``train(key) -> TrainOutput``: :func:`make_chunked` in one call."""
    return as_train(make_chunked(config, env, env_params, task, terminal_value_fn))


def make_mpc(
    config: Config,
    env,
    env_params,
    task: TaskFunctions | None = None,
    terminal_value_fn=None,
):
    """PETS's ensemble and the planner that plans through it, without the training loop.

    What :func:`make_chunked` builds before its trials; useful to act with a
    fitted ensemble (``TrainOutput.ensemble``) under another planner.

    Args: as :func:`make_chunked`.

    Returns:
      ``(ensemble, planner, action_spec)``: the
      :class:`~mbrl_jax.models.ensemble.Ensemble`, a
      ``Planner(init, plan)`` whose ``plan(ensemble_state, key, obs,
      planner_state)`` plans with the ensemble and the known task functions
      (and the state cost), and the env's
      :class:`~mbrl_jax.planners.shooting.ActionSpec`.
    """
    task = task if task is not None else (task_functions(env) or TaskFunctions())
    state_cost_fn = task.state_cost_fn
    if terminal_value_fn is None and state_cost_fn is not None and config.terminal_cost > 0:

        def terminal_value_fn(obs):
            return -config.terminal_cost * state_cost_fn(obs)

    ensemble_config = dataclasses.replace(
        config.model.for_env(env, env_params),
        learn_reward=task.reward_fn is None,
        learn_termination=task.termination_fn is None,
    )
    ensemble = make_ensemble(ensemble_config)
    action_spec = ActionSpec.from_space(env.action_space(env_params))
    # The planner plans with the ensemble and the known functions; the state
    # cost (where there is a known reward) shapes only what the planner sees.
    model = with_task(
        ensemble_model(ensemble, config.propagation, config.num_epochs),
        task.reward_fn,
        task.termination_fn,
        state_cost_fn if task.reward_fn is not None else None,
        config.state_cost,
    )
    planner = make_any_planner(
        planner_config(config, ensemble_config.ensemble_size),
        model,
        action_spec,
        terminal_value_fn=terminal_value_fn,
    )
    return ensemble, planner, action_spec


def make_chunked(
    config: Config,
    env,
    env_params,
    task: TaskFunctions | None = None,
    terminal_value_fn=None,
) -> Chunked:
    """Builds the run: the random trials in ``init``, one MPC trial per unit.

    Args:
      config: :class:`Config`.
      env: gymnax environment with a vector observation (continuous or discrete actions).
      env_params: its params.
      task: known reward, termination and state-cost functions
        (:class:`~mbrl_jax.envs.tasks.TaskFunctions`; a ``None`` field is
        learned by the model). Default: what the environment registry knows
        for ``env`` (:func:`mbrl_jax.envs.task_functions`); pass
        ``TaskFunctions()`` to learn everything.
      terminal_value_fn: ``(obs [N, D]) -> [N]`` terminal value of planned
        rollouts; default: minus ``config.terminal_cost`` times the task's
        state cost, where it has one and the weight is positive.

    Raises:
      ValueError: bad env (observation not a vector) or settings.
    """
    ensemble, planner, action_spec = make_mpc(config, env, env_params, task, terminal_value_fn)
    obs_dim = ensemble.config.obs_dim
    steps = config.trial_length
    capacity = config.num_trials * steps
    if action_spec.discrete:
        example_action = jnp.int32(0)
    else:
        example_action = jnp.zeros((action_spec.dim,), jnp.float32)
        low = jnp.asarray(action_spec.low)
        high = jnp.asarray(action_spec.high)

    def random_action(key):
        if action_spec.discrete:
            return jax.random.randint(key, (), 0, action_spec.num_actions)
        return jax.random.uniform(key, (action_spec.dim,), minval=low, maxval=high)

    def episode(key, act, keep_going=False):
        """One trial; ``act(key, obs, planner_state) -> (action, planner_state, predicted)``.

        With ``keep_going`` every step is kept (auto-reset collects across
        episodes, as the random data collection does); the return and length
        are those of the first episode.
        """
        reset_key, loop_key = jax.random.split(key)
        obs, env_state = env.reset(reset_key, env_params)

        def body(carry, step_key):
            obs, env_state, planner_state, alive = carry
            act_key, env_key = jax.random.split(step_key)
            action, planner_state, predicted = act(act_key, obs, planner_state)
            next_obs, env_state, reward, terminated, truncated, info = env.step(
                env_key, env_state, action, env_params
            )
            transition = Transition(obs, action, reward, info["final_observation"], terminated)
            out = (transition, alive | keep_going, reward * alive, predicted, alive, obs)
            alive = alive & ~(terminated | truncated)
            return (next_obs, env_state, planner_state, alive), out

        init = (obs, env_state, planner.init(), jnp.bool_(True))
        _, (transitions, mask, rewards, predicted, first, observations) = jax.lax.scan(
            body, init, jax.random.split(loop_key, steps)
        )
        length = first.sum().astype(jnp.int32)
        return transitions, mask, rewards, length, (predicted, observations)

    num_mpc = config.num_trials - config.random_trials

    def init_run(key: PRNGKey) -> PetsRunState:
        init_key, random_key, mpc_key = jax.random.split(key, 3)
        ens_state = ensemble.init(init_key)
        example = Transition(
            state=jnp.zeros(obs_dim),
            action=example_action,
            reward=jnp.float32(0),
            next_state=jnp.zeros(obs_dim),
            done=jnp.bool_(False),
        )
        buffer = buffer_init(example, capacity)

        def random_trial(buffer, key):
            act = lambda k, obs, ps: (random_action(k), ps, jnp.float32(0))  # noqa: E731
            transitions, mask, rewards, length, predicted = episode(key, act, keep_going=True)
            return buffer_add(buffer, transitions, mask), (rewards, length, predicted)

        buffer, random_out = jax.lax.scan(
            random_trial, buffer, jax.random.split(random_key, config.random_trials)
        )
        last = EvalResult(random_out[0][-1].sum()[None], random_out[1][-1][None])
        return PetsRunState(buffer, ens_state, mpc_key, jnp.int32(0), random_out, last)

    def unit(state: PetsRunState):
        key = jax.random.split(state.mpc_key, num_mpc)[state.trial]
        fit_key, run_key = jax.random.split(key)
        ens_state, info = ensemble.fit(fit_key, state.ens_state, state.buffer, config.num_epochs)

        def act(k, obs, planner_state):
            result, planner_state = planner.plan(ens_state, k, obs, planner_state)
            return result.action, planner_state, result.predicted_return

        transitions, mask, rewards, length, predicted = episode(run_key, act)
        buffer = buffer_add(state.buffer, transitions, mask)
        new = state._replace(
            buffer=buffer,
            ens_state=ens_state,
            trial=state.trial + 1,
            last=EvalResult(rewards.sum()[None], length[None]),
        )
        return new, (rewards, length, predicted, info.val_loss, info.train_loss)

    def finish(state: PetsRunState, outs):
        m_rewards, m_lengths, m_pred, val_loss, train_loss = outs
        r_rewards, r_lengths, r_pred = state.random_out
        zeros = lambda x: jnp.zeros((config.random_trials, *x.shape[1:]), x.dtype)  # noqa: E731
        step_rewards = jnp.concatenate([r_rewards, m_rewards])
        lengths = jnp.concatenate([r_lengths, m_lengths])
        active = jnp.arange(steps)[None, :] < lengths[:, None]
        done = jnp.arange(steps)[None, :] == (lengths[:, None] - 1)
        return state, TrainOutput(
            metrics=StepMetrics(
                reward=step_rewards.reshape(-1), done=done.reshape(-1), active=active.reshape(-1)
            ),
            trial_returns=step_rewards.sum(-1),
            trial_lengths=lengths,
            val_loss=jnp.concatenate([zeros(val_loss), val_loss]),
            train_loss=jnp.concatenate([zeros(train_loss), train_loss]),
            predicted_return=jnp.concatenate([r_pred[0], m_pred[0]]),
            observations=jnp.concatenate([r_pred[1], m_pred[1]]),
            step_rewards=step_rewards,
            ensemble=state.ens_state,
        )

    def trial_stream(outs):
        rewards, lengths = outs[0], outs[1]
        done = jnp.arange(steps)[None, :] == (lengths[:, None] - 1)
        return rewards.reshape(-1), done.reshape(-1)

    return Chunked(
        init=init_run,
        unit=unit,
        finish=finish,
        num_units=num_mpc,
        unit_steps=steps,
        initial_steps=config.random_trials * steps,
        # Each MPC trial runs the evaluation policy (no noise added): the last one.
        evaluate=lambda state, _key, _num_episodes=1: state.last,
        eval_note="the last trial (PETS acts with its evaluation policy, MPC without added noise)",
        stream=trial_stream,
    )


class PetsRunState(NamedTuple):
    """A PETS run between trials: the data, the ensemble, the MPC trials' key,
    the next MPC trial's index, the random trials' records (``rewards``,
    ``lengths``, ``(predicted, observations)``) and the last trial's return and length."""

    buffer: ReplayBuffer
    ens_state: EnsembleState
    mpc_key: PRNGKey
    trial: Array
    random_out: tuple
    last: EvalResult
