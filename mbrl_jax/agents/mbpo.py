"""MBPO (Janner et al., 2019): SAC trained mostly on short model rollouts
branched from real states, compiled end to end.

``num_steps`` real steps per seed: ``learning_starts`` of uniformly random
actions (``init``), then blocks of ``model_train_freq`` steps (one per
``unit``). Each block first fits the probabilistic ensemble on all real data
so far (``Ensemble.fit``; 7 members, 5 elites by default, learned reward and
termination heads unless ``known_task``), then rolls ``rollout_batch_size``
start states sampled from the real buffer ``k`` steps through the elites (a
random elite per transition, PETS's TS1) under the current stochastic policy,
and writes every imagined transition into the model buffer. ``k`` follows the
paper's schedule ``(min_epoch, max_epoch, min_k, max_k)``: linear in the
epoch (``epoch_length`` real steps) between the two, clipped. The model
buffer keeps the rollouts of the last ``model_retain_epochs`` epochs at the
current ``k`` (the paper resizes it as ``k`` grows; with one static capacity
for the largest ``k`` the sampling is restricted to the newest entries
instead). Then every real step adds the transition to the real buffer and
takes ``updates_per_step`` SAC gradient steps (:func:`mbrl_jax.agents.sac.update`)
on batches of which a ``real_ratio`` share is real data and the rest model data.

Everything is one jittable ``train(key)`` (``make_train``), vmappable over seeds.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from mbrl_jax.agents import sac
from mbrl_jax.agents.common import vector_observation_shape
from mbrl_jax.core.chunked import Chunked, EvalResult, as_train, evaluate_episodes
from mbrl_jax.core.replay import ReplayBuffer, buffer_add, buffer_init, buffer_sample
from mbrl_jax.core.types import Array, PRNGKey, Transition
from mbrl_jax.core.validation import check_range
from mbrl_jax.envs.registry import task_functions
from mbrl_jax.models.ensemble import Ensemble, EnsembleConfig, make_ensemble

MAX_STEPS = 2**31 - 1


def default_model() -> EnsembleConfig:
    """MBPO's ensemble: 7 probabilistic members of 4 x 200 SiLU layers, 5 elites."""
    return EnsembleConfig(
        ensemble_size=7,
        num_elites=5,
        hidden_size=200,
        num_layers=4,
        batch_size=256,
        learning_rate=1e-3,
        weight_decay=5e-5,
    )


@dataclasses.dataclass(frozen=True)
class Config:
    """MBPO settings (validated on construction).

    Attributes:
      num_steps: real environment steps per seed (the budget).
      learning_starts: leading steps of uniformly random actions, ``>= 1``;
        model training, rollouts and SAC updates start after them.
      model_train_freq: real steps between model fits (one block), ``>= 1``.
      model_epochs: epochs of each fit, ``>= 1``.
      rollout_batch_size: start states of the model rollouts after each fit.
      rollout_schedule: ``(min_epoch, max_epoch, min_k, max_k)``: the rollout
        length grows linearly from ``min_k`` at epoch ``min_epoch`` to
        ``max_k`` at ``max_epoch``; ``1 <= min_k <= max_k``, ``min_epoch <= max_epoch``.
      epoch_length: real steps per epoch of the schedule and of the model
        buffer's retention, ``>= model_train_freq``.
      model_retain_epochs: epochs of rollouts the model buffer keeps, ``>= 1``.
      real_ratio: share of real transitions in each SAC batch, in ``[0, 1]``.
      updates_per_step: SAC gradient steps per real step (UTD ratio), ``>= 1``.
      known_task: use the registry's known reward and termination functions
        for the environment instead of learned heads (where it has them).
      sac: the SAC learner's settings (its ``num_steps``, ``learning_starts``,
        ``buffer_size`` and ``updates_per_step`` are MBPO's, not read).
      model: the ensemble's settings (sizes are read off the environment;
        reward and termination heads are switched on as needed).
    """

    num_steps: int = 5000
    learning_starts: int = 1000
    model_train_freq: int = 250
    model_epochs: int = 25
    rollout_batch_size: int = 5000
    rollout_schedule: tuple[int, int, int, int] = (1, 15, 1, 1)
    epoch_length: int = 1000
    model_retain_epochs: int = 1
    real_ratio: float = 0.05
    updates_per_step: int = 20
    known_task: bool = False
    sac: sac.Config = dataclasses.field(default_factory=sac.Config)
    model: EnsembleConfig = dataclasses.field(default_factory=default_model)

    def __post_init__(self):
        check_range(self, "num_steps", low=1, high=MAX_STEPS)
        check_range(self, "learning_starts", low=1, high=MAX_STEPS)
        for name in ("model_train_freq", "model_epochs", "rollout_batch_size"):
            check_range(self, name, low=1)
        check_range(self, "updates_per_step", low=1, high=10_000)
        check_range(self, "model_retain_epochs", low=1, high=1000)
        check_range(self, "real_ratio", low=0.0, high=1.0)
        check_range(self, "epoch_length", low=self.model_train_freq)
        schedule = self.rollout_schedule
        if (
            not isinstance(schedule, tuple | list)
            or len(schedule) != 4
            or any(isinstance(v, bool) or not isinstance(v, int) for v in schedule)
        ):
            raise ValueError(
                "mbpo.Config.rollout_schedule must be 4 integers (min_epoch, max_epoch, "
                f"min_k, max_k), got {schedule!r}"
            )
        min_epoch, max_epoch, min_k, max_k = schedule
        if not (0 <= min_epoch <= max_epoch and 1 <= min_k <= max_k <= 1000):
            raise ValueError(
                "mbpo.Config.rollout_schedule needs 0 <= min_epoch <= max_epoch and "
                f"1 <= min_k <= max_k <= 1000 (the rollout length), got {schedule!r}"
            )
        object.__setattr__(self, "rollout_schedule", tuple(schedule))
        if not isinstance(self.sac, sac.Config):
            raise ValueError(f"mbpo.Config.sac must be a sac.Config, got {type(self.sac)}")
        if not isinstance(self.model, EnsembleConfig):
            raise ValueError(f"mbpo.Config.model must be an EnsembleConfig, got {type(self.model)}")


def rollout_length(config: Config, step: Array) -> Array:
    """``[]`` int32 ``k`` of the schedule after ``step`` real steps."""
    min_epoch, max_epoch, min_k, max_k = config.rollout_schedule
    epoch = step / config.epoch_length
    frac = jnp.clip((epoch - min_epoch) / max(max_epoch - min_epoch, 1), 0.0, 1.0)
    return jnp.floor(min_k + frac * (max_k - min_k)).astype(jnp.int32)


class StepMetrics(NamedTuple):
    """Per real step, ``[num_steps]`` each: ``reward``, ``done`` (termination or
    truncation), ``q_updates`` (SAC gradient steps after the step), and the
    rollout length ``k`` in force (0 before the first fit)."""

    reward: Array
    done: Array
    q_updates: Array
    rollout_length: Array


class TrainOutput(NamedTuple):
    """``metrics`` (:class:`StepMetrics`), the final SAC learner, the final model,
    and the model fits' validation loss per block ``[num_blocks, E]``."""

    metrics: StepMetrics
    agent: sac.SACState
    model: Any
    model_val_loss: Array


class MbpoRunState(NamedTuple):
    """A run between blocks: learner, model, both buffers, the current observation
    and environment state, the next step ``t``, the loop key."""

    agent: sac.SACState
    model: Any
    real: ReplayBuffer
    imagined: ReplayBuffer
    obs: Array
    env_state: Any
    t: Array
    loop_key: PRNGKey


def make_train(config: Config, env, env_params):
    """``train(key) -> TrainOutput``: :func:`make_chunked` in one call."""
    return as_train(make_chunked(config, env, env_params))


def make_chunked(config: Config, env, env_params) -> Chunked:
    """Builds the run: random steps in ``init``, one ``model_train_freq`` block per unit
    (the remainder in ``finish``).

    Raises:
      ValueError: an env without vector observations or continuous actions,
        or ``learning_starts > num_steps``.
    """
    c = config
    (obs_dim,) = vector_observation_shape(env, env_params, "MBPO")
    low_np, high_np, env_action_shape = sac.action_bounds(env, env_params)
    action_dim = low_np.size
    low, high = jnp.asarray(low_np), jnp.asarray(high_np)
    if c.learning_starts > c.num_steps:
        raise ValueError(
            f"mbpo.Config.learning_starts ({c.learning_starts}) must be <= num_steps "
            f"({c.num_steps})"
        )
    task = task_functions(env) if c.known_task else None
    reward_fn = task.reward_fn if task is not None else None
    termination_fn = task.termination_fn if task is not None else None
    model_config = dataclasses.replace(
        c.model.for_env(env, env_params),
        learn_reward=reward_fn is None,
        learn_termination=termination_fn is None,
    )
    ensemble = make_ensemble(model_config)
    # The elites as an ensemble of their own: rollouts draw a random elite per transition.
    elite_config = dataclasses.replace(
        model_config,
        ensemble_size=model_config.num_elites,
        num_elites=model_config.num_elites,
        uncertainty="bootstrap",
    )
    elites = Ensemble(elite_config)

    sac_config = dataclasses.replace(c.sac, num_steps=c.num_steps, learning_starts=0)
    n_real = int(round(c.real_ratio * sac_config.batch_size))
    n_model = sac_config.batch_size - n_real
    max_k = c.rollout_schedule[3]
    fits_per_epoch = max(1, c.epoch_length // c.model_train_freq)
    model_capacity = c.rollout_batch_size * max_k * fits_per_epoch * c.model_retain_epochs
    block = c.model_train_freq
    num_blocks, remainder = divmod(c.num_steps - c.learning_starts, block)
    eval_cap = int(getattr(env_params, "max_steps_in_episode", 1000))

    def env_step(key, env_state, obs, action):
        next_obs, env_state, reward, terminated, truncated, info = env.step(
            key, env_state, action.reshape(env_action_shape), env_params
        )
        final = info["final_observation"].astype(jnp.float32)
        transition = Transition(obs, action, reward.astype(jnp.float32), final, terminated)
        return next_obs.astype(jnp.float32), env_state, transition, terminated | truncated

    def init_run(key: PRNGKey) -> tuple[MbpoRunState, StepMetrics]:
        agent_key, model_key, reset_key, random_key, loop_key = jax.random.split(key, 5)
        agent = sac.init_sac(sac_config, agent_key, obs_dim, action_dim, low, high)
        obs, env_state = env.reset(reset_key, env_params)
        obs = obs.astype(jnp.float32)
        example = Transition(
            obs, jnp.zeros((action_dim,), jnp.float32), jnp.float32(0), obs, jnp.bool_(False)
        )
        real = buffer_init(example, c.num_steps)
        imagined = buffer_init(example, model_capacity)

        def random_step(carry, k):
            real, obs, env_state = carry
            action_key, step_key = jax.random.split(k)
            action = jax.random.uniform(action_key, (action_dim,), minval=low, maxval=high)
            obs, env_state, tr, done = env_step(step_key, env_state, obs, action)
            real = buffer_add(real, jax.tree.map(lambda x: x[None], tr))
            return (real, obs, env_state), (tr.reward, done)

        (real, obs, env_state), (rewards, dones) = jax.lax.scan(
            random_step, (real, obs, env_state), jax.random.split(random_key, c.learning_starts)
        )
        state = MbpoRunState(
            agent,
            ensemble.init(model_key),
            real,
            imagined,
            obs,
            env_state,
            jnp.int32(c.learning_starts),
            loop_key,
        )
        zeros = jnp.zeros(c.learning_starts, jnp.int32)
        return state, StepMetrics(rewards, dones, zeros, zeros)

    def model_rollouts(key, agent, model_state, real, imagined, k):
        """``rollout_batch_size`` branched rollouts of ``max_k`` steps (steps
        ``>= k`` masked out) into the model buffer."""
        start_key, loop_key = jax.random.split(key)
        starts = buffer_sample(real, start_key, c.rollout_batch_size).state
        elite_state = model_state.replace(
            params=jax.tree.map(lambda x: x[model_state.elites], model_state.params)
        )

        def one(carry, inputs):
            obs, alive = carry
            step_key, i = inputs
            act_key, model_key = jax.random.split(step_key)
            action = sac.act(sac_config, agent, act_key, obs)
            next_obs, reward, term = elites.step_particles(
                elite_state, model_key, obs, action, "ts1"
            )
            if reward_fn is not None:
                reward = reward_fn(obs, action, next_obs)
            done = term > 0.5 if termination_fn is None else termination_fn(next_obs)
            tr = Transition(obs, action, reward, next_obs, done)
            keep = alive & (i < k) & jnp.all(jnp.isfinite(next_obs), -1) & jnp.isfinite(reward)
            return (next_obs, keep & ~done), (tr, keep)

        alive0 = jnp.ones(c.rollout_batch_size, bool)
        _, (trs, keep) = jax.lax.scan(
            one, (starts, alive0), (jax.random.split(loop_key, max_k), jnp.arange(max_k))
        )
        flat = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), trs)
        return buffer_add(imagined, flat, keep.reshape(-1))

    def sample_model(imagined, key, k):
        """``n_model`` entries of the newest ``rollout_batch_size x k x fits per
        epoch x retained epochs`` (the paper's buffer size at this ``k``)."""
        window = jnp.minimum(
            imagined.size, c.rollout_batch_size * k * fits_per_epoch * c.model_retain_epochs
        )
        back = jax.random.randint(key, (n_model,), 0, jnp.maximum(window, 1))
        index = (imagined.position - 1 - back) % imagined.capacity
        return jax.tree.map(lambda x: x[index], imagined.data)

    def learn(agent, real, imagined, key, k):
        def one(agent, keys):
            real_batch = buffer_sample(real, keys[0], n_real)
            model_batch = sample_model(imagined, keys[1], k)
            batch = jax.tree.map(
                lambda a, b: jnp.concatenate([a, b.astype(a.dtype)]), real_batch, model_batch
            )
            return sac.update(sac_config, agent, keys[2], batch)[0], None

        keys = jax.random.split(key, c.updates_per_step * 3).reshape(c.updates_per_step, 3)
        return jax.lax.scan(one, agent, keys)[0]

    def run_block(run: MbpoRunState, size: int, fit: bool):
        block_key = jax.random.fold_in(run.loop_key, run.t)
        fit_key, roll_key, steps_key = jax.random.split(block_key, 3)
        k = rollout_length(c, run.t)
        model, imagined = run.model, run.imagined
        val_loss = jnp.zeros(model_config.ensemble_size)
        if fit:
            model, info = ensemble.fit(fit_key, model, run.real, c.model_epochs)
            val_loss = info.val_loss
            imagined = model_rollouts(roll_key, run.agent, model, run.real, imagined, k)

        def step(carry, keys):
            agent, real, obs, env_state = carry
            action = sac.act(sac_config, agent, keys[0], obs)
            obs, env_state, tr, done = env_step(keys[1], env_state, obs, action)
            real = buffer_add(real, jax.tree.map(lambda x: x[None], tr))
            agent = learn(agent, real, imagined, keys[2], k)
            out = StepMetrics(tr.reward, done, jnp.int32(c.updates_per_step), k)
            return (agent, real, obs, env_state), out

        keys = jax.random.split(steps_key, size * 3).reshape(size, 3)
        (agent, real, obs, env_state), metrics = jax.lax.scan(
            step, (run.agent, run.real, run.obs, run.env_state), keys
        )
        new = MbpoRunState(agent, model, real, imagined, obs, env_state, run.t + size, run.loop_key)
        return new, (metrics, val_loss)

    def init(key):
        return init_run(key)

    def unit(state):
        run, first = state
        run, outs = run_block(run, block, fit=True)
        return (run, first), outs

    def finish(state, outs):
        run, first = state
        metrics, val_loss = outs
        metrics = jax.tree.map(lambda m: m.reshape(num_blocks * block), metrics)
        if remainder:
            run, (tail, _) = run_block(run, remainder, fit=num_blocks == 0)
            metrics = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), metrics, tail)
        metrics = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), first, metrics)
        return state, TrainOutput(metrics, run.agent, run.model, val_loss)

    def greedy(agent, key, obs, _states):
        actions = sac.act(sac_config, agent, key, obs, deterministic=True)
        return actions.reshape(obs.shape[0], *env_action_shape)

    def evaluate(state, key: PRNGKey, num_episodes: int = 10) -> EvalResult:
        return evaluate_episodes(
            greedy, env, env_params, state[0].agent, key, num_episodes, eval_cap
        )

    def stream(outs):
        metrics = outs[0]
        return metrics.reward.reshape(-1), metrics.done.reshape(-1)

    return Chunked(
        init=init,
        unit=unit,
        finish=finish,
        num_units=num_blocks,
        unit_steps=block,
        final_steps=remainder,
        initial_steps=c.learning_starts,
        evaluate=evaluate,
        eval_note="deterministic SAC policy (tanh of the Gaussian's mean), real environment",
        stream=stream,
    )
