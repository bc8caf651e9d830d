"""DQN (Mnih et al., 2015) with double-DQN targets (van Hasselt et al., 2016), compiled end to end.

``train(key)`` runs ``num_steps`` real steps of one environment. The run is
cut into *phases*: ``train_freq`` epsilon-greedy steps (one ``lax.scan``),
their transitions written to a replay buffer, then ``gradient_steps`` updates
on minibatches drawn from it (another ``lax.scan``). Updates count only once
``learning_starts`` steps are taken (a ``where``, not a ``cond``: under
``vmap`` a ``cond`` would run both branches anyway). Every phase has the same
shapes, so nothing recompiles and ``jax.jit(jax.vmap(train))(keys)`` trains
many seeds at once.

The loss is the Huber loss of ``Q(s, a)`` against the double-DQN target
``r + discount * (1 - terminated) * Q_target(s', argmax_a Q_online(s', a))``:
only termination ends the bootstrap; a time-limit truncation stores the
pre-reset observation (gymnax's ``info["final_observation"]``) as ``s'`` and
bootstraps through it. Adam with global-norm gradient clipping; the target
network moves to ``tau * online + (1 - tau) * target`` every
``target_update_interval`` updates (``tau = 1``: a hard copy).

The loop itself (:func:`make_loop`) takes hooks, so :mod:`mbrl_jax.agents.dyna_dqn`
reuses it with a learned model that adds imagined transitions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from mbrl_jax.agents.common import epsilon_greedy, vector_observation_shape
from mbrl_jax.core.chunked import Chunked, EvalResult, as_train, evaluate_episodes
from mbrl_jax.core.replay import ReplayBuffer, buffer_add, buffer_init
from mbrl_jax.core.types import Array, PRNGKey, Transition
from mbrl_jax.core.validation import MAX_STEPS, check_choice, check_int_value, check_range


@dataclasses.dataclass(frozen=True)
class Config:
    """DQN settings (validated on construction). Defaults solve gymnax ``CartPole-v1``.

    Defaults: one update of 128 transitions per real step, Adam at 2.5e-4, a
    Polyak-averaged target (``tau`` 0.005 per update), epsilon from 1 to 0.05
    over the first 10% of the run. On ``CartPole-v1`` (5 seeds, 100,000
    steps) four seeds reach a mean training return >= 475 over 10 episodes
    after 42,000-53,000 steps and the fifth peaks at 467; the settings of
    rl-baselines3-zoo (bursts of 128 updates every 256 steps, 256 x 256,
    Adam at 2.3e-3) peaked at 340-415, and 1e-3 or two updates per step
    learned faster at first but collapsed more often.

    ``layer_norm=True`` with ``learning_rate=1e-3``, 8-32 ``gradient_steps``
    and epsilon falling over 5,000 steps is far more sample-efficient on
    ``CartPole-v1``: the greedy policy first reaches >= 475 after 2,500-5,500
    real steps in every seed of 5 (``examples/dyna_dqn_ablation.py``, variants
    ``f_dqn_*``; at 4 updates in 3 of 5), though not yet stably by 10,000
    steps. The defaults stay as measured above (the figures of the README's
    comparisons).

    Attributes:
      num_steps: real environment steps per seed.
      hidden_sizes: widths of the Q-network's ReLU layers.
      learning_rate: Adam step size, > 0.
      batch_size: transitions per update.
      discount: ``gamma`` in ``[0, 1]``.
      buffer_size: replay capacity (capped at ``num_steps``).
      learning_starts: real steps before the first update counts.
      train_freq: real steps per phase (between bursts of updates).
      gradient_steps: updates at the end of each phase.
      target_update_interval: updates between target-network updates.
      tau: share of the online network moved into the target at each target
        update, in ``(0, 1]`` (1: hard copy).
      epsilon_start, epsilon_end: exploration probability at step 0 and after
        the schedule, in ``[0, 1]``.
      exploration_fraction: share of ``num_steps`` over which epsilon falls
        linearly from start to end, in ``[0, 1]``.
      double_dqn: evaluate the target network at the online network's argmax
        (False: the target network's own max, the 2015 DQN target).
      huber_delta: where the Huber loss turns from quadratic to linear, > 0.
      max_grad_norm: global-norm gradient clipping, > 0.
      layer_norm: LayerNorm before each hidden ReLU.
    """

    num_steps: int = 100_000
    hidden_sizes: tuple[int, ...] = (128, 128)
    learning_rate: float = 2.5e-4
    batch_size: int = 128
    discount: float = 0.99
    buffer_size: int = 100_000
    learning_starts: int = 1000
    train_freq: int = 1
    gradient_steps: int = 1
    target_update_interval: int = 1
    tau: float = 0.005
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    exploration_fraction: float = 0.1
    double_dqn: bool = True
    huber_delta: float = 1.0
    max_grad_norm: float = 10.0
    layer_norm: bool = False

    def __post_init__(self):
        check_range(self, "num_steps", low=1, high=MAX_STEPS)
        sizes = self.hidden_sizes
        if not isinstance(sizes, tuple) or not sizes:
            raise ValueError(
                f"dqn.Config.hidden_sizes must be a non-empty tuple of integers >= 1, got {sizes!r}"
            )
        for i, size in enumerate(sizes):
            check_int_value(f"dqn.Config.hidden_sizes[{i}]", size, low=1, high=1 << 16)
        for name in ("batch_size", "buffer_size", "train_freq", "gradient_steps"):
            check_range(self, name, low=1, high=MAX_STEPS)
        check_range(self, "target_update_interval", low=1, high=MAX_STEPS)
        check_range(self, "learning_starts", low=0, high=MAX_STEPS)
        check_range(self, "learning_rate", low=0.0, low_open=True)
        check_range(self, "discount", low=0.0, high=1.0)
        check_range(self, "tau", low=0.0, high=1.0, low_open=True)
        for name in ("epsilon_start", "epsilon_end", "exploration_fraction"):
            check_range(self, name, low=0.0, high=1.0)
        check_range(self, "huber_delta", low=0.0, low_open=True)
        check_range(self, "max_grad_norm", low=0.0, low_open=True)
        check_choice(self, "double_dqn", (True, False))
        check_choice(self, "layer_norm", (True, False))


# ----------------------------------------------------------------------- network and loss
class QNetwork(nn.Module):
    """ReLU MLP (optionally LayerNorm before each ReLU): ``obs [..., D]`` -> ``[..., A]``."""

    hidden_sizes: tuple[int, ...]
    num_actions: int
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs):
        x = obs
        for size in self.hidden_sizes:
            x = nn.Dense(size)(x)
            x = nn.relu(nn.LayerNorm()(x) if self.layer_norm else x)
        return nn.Dense(self.num_actions)(x)


class DQNState(NamedTuple):
    """The learner: online and target parameters, Adam's state, updates done (``[]`` int32)."""

    params: Any
    target_params: Any
    opt_state: optax.OptState
    num_updates: Array


class UpdateMetrics(NamedTuple):
    """One update's ``loss`` and the mean ``q`` of the batch's taken actions (``[]`` each)."""

    loss: Array
    q: Array


def optimizer(config: Config) -> optax.GradientTransformation:
    """Adam after global-norm clipping."""
    return optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm), optax.adam(config.learning_rate)
    )


def init_dqn(config: Config, key: PRNGKey, obs_dim: int, num_actions: int) -> DQNState:
    """A fresh learner; the target starts as a copy of the online network."""
    network = QNetwork(config.hidden_sizes, num_actions, config.layer_norm)
    params = network.init(key, jnp.zeros((obs_dim,), jnp.float32))
    return DQNState(params, params, optimizer(config).init(params), jnp.int32(0))


def q_values(config: Config, params, obs: Array) -> Array:
    """Action values ``[..., A]`` of observations ``[..., D]``."""
    num_actions = params["params"][f"Dense_{len(config.hidden_sizes)}"]["bias"].shape[-1]
    return QNetwork(config.hidden_sizes, num_actions, config.layer_norm).apply(params, obs)


def td_target(config: Config, params, target_params, batch: Transition) -> Array:
    """``[B]`` targets ``r + discount * (1 - terminated) * V(s')``.

    ``V(s')`` is ``Q_target(s', argmax Q_online(s'))`` with ``double_dqn``,
    else ``max Q_target(s')``. ``batch.done`` is termination only: a truncated
    step bootstraps from its pre-reset ``next_state``.
    """
    q_next_target = q_values(config, target_params, batch.next_state)
    if config.double_dqn:
        best = jnp.argmax(q_values(config, params, batch.next_state), axis=-1)
        v_next = jnp.take_along_axis(q_next_target, best[..., None], axis=-1)[..., 0]
    else:
        v_next = q_next_target.max(-1)
    not_done = 1.0 - batch.done.astype(jnp.float32)
    return batch.reward + config.discount * not_done * v_next


def dqn_loss(config: Config, params, target_params, batch: Transition) -> tuple[Array, Array]:
    """``(loss [], q_taken [B])``: mean Huber loss of ``Q(s, a)`` against the
    (gradient-stopped) :func:`td_target`."""
    target = jax.lax.stop_gradient(td_target(config, params, target_params, batch))
    q = q_values(config, params, batch.state)
    q_taken = jnp.take_along_axis(q, batch.action[..., None].astype(jnp.int32), axis=-1)[..., 0]
    loss = optax.huber_loss(q_taken, target, delta=config.huber_delta).mean()
    return loss, q_taken


def update(
    config: Config, state: DQNState, key: PRNGKey, batch: Transition
) -> tuple[DQNState, UpdateMetrics]:
    """One gradient step on ``batch`` (leaves ``[B, ...]``), then the target update if due.

    ``key`` is unused (DQN's update is deterministic); it keeps the signature
    of learners whose updates draw random numbers.
    """
    del key
    (loss, q_taken), grads = jax.value_and_grad(dqn_loss, argnums=1, has_aux=True)(
        config, state.params, state.target_params, batch
    )
    updates, opt_state = optimizer(config).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    num_updates = state.num_updates + 1
    due = num_updates % config.target_update_interval == 0
    target = jax.tree.map(
        lambda t, o: jnp.where(due, config.tau * o + (1.0 - config.tau) * t, t),
        state.target_params,
        params,
    )
    return DQNState(params, target, opt_state, num_updates), UpdateMetrics(loss, q_taken.mean())


def epsilon_at(config: Config, step: Array) -> Array:
    """``[]`` exploration probability at real step ``step`` (linear, then constant)."""
    duration = config.exploration_fraction * config.num_steps
    if duration <= 0:
        return jnp.full(jnp.shape(step), config.epsilon_end, jnp.float32)
    frac = jnp.clip(jnp.asarray(step, jnp.float32) / duration, 0.0, 1.0)
    return config.epsilon_start + frac * (config.epsilon_end - config.epsilon_start)


def act(config: Config, params, key: PRNGKey, obs: Array, epsilon: Array) -> Array:
    """``[]`` int32 epsilon-greedy action for one observation ``[D]`` (greedy ties at random)."""
    q = q_values(config, params, obs)
    return epsilon_greedy(q, epsilon, jax.random.bits(key, (q.shape[-1] + 1,), jnp.uint32))


# ------------------------------------------------------------------------------- the loop
class StepMetrics(NamedTuple):
    """Per-real-step record, each ``[num_steps]``.

    Attributes:
      reward: the step's reward.
      done: the step ended an episode (termination or truncation).
      terminated: it ended one by termination.
      q_updates: gradient updates done after this step (at a phase's last step).
      planning_updates: imagined transitions in those updates' batches (0 for DQN).
      loss: mean loss of those updates (0 elsewhere).
    """

    reward: Array
    done: Array
    terminated: Array
    q_updates: Array
    planning_updates: Array
    loss: Array


class TrainOutput(NamedTuple):
    """Result of one run: ``metrics`` (:class:`StepMetrics`) and the final learner."""

    metrics: StepMetrics
    agent: DQNState


class RunState(NamedTuple):
    """A run between units: learner, real replay, environment, phases done, the
    loop's key, and ``extra`` (what an extension of the loop carries; ``None`` here)."""

    agent: DQNState
    buffer: ReplayBuffer
    env_state: Any
    obs: Array
    phase: Array
    key: PRNGKey
    extra: Any


class Hooks(NamedTuple):
    """What an extension of the DQN loop adds (:mod:`mbrl_jax.agents.dyna_dqn`).

    Attributes:
      init_extra: ``init_extra(key) -> extra``, carried in ``RunState.extra``.
      block_start: ``block_start(run, key) -> (run, info)`` at the start of
        every block of ``block_phases`` phases; ``info`` a fixed-shape pytree.
      sample: ``sample(run, key) -> (batches, planning_rows)``: a
        :class:`Transition` with leaves ``[gradient_steps, batch_size, ...]``
        and ``[]`` int32 rows per batch that are not real data.
      block_phases: phases per block (static).
    """

    init_extra: Callable[[PRNGKey], Any]
    block_start: Callable[[RunState, PRNGKey], tuple[RunState, Any]]
    sample: Callable[[RunState, PRNGKey], tuple[Transition, Array]]
    block_phases: int = 1


def sample_real(config: Config, buffer: ReplayBuffer, key: PRNGKey) -> Transition:
    """``[gradient_steps, batch_size]`` uniform draws (with replacement) from ``buffer``."""
    shape = (config.gradient_steps, config.batch_size)
    index = jax.random.randint(key, shape, 0, jnp.maximum(buffer.size, 1))
    return jax.tree.map(lambda x: x[index], buffer.data)


def discrete_env(env, env_params, agent: str) -> tuple[int, int]:
    """``(D, A)`` of an env with vector observations and discrete actions, or a ``ValueError``."""
    space = env.action_space(env_params)
    if not hasattr(space, "n"):
        raise ValueError(
            f"env: {agent} needs discrete actions; "
            f"{getattr(env, 'name', type(env).__name__)} has {space!r}"
        )
    (obs_dim,) = vector_observation_shape(env, env_params, agent)
    return int(obs_dim), int(space.n)


def make_train(config: Config, env, env_params):
    """``train(key) -> TrainOutput`` (jit and vmap it): :func:`make_chunked` in one call."""
    return as_train(make_chunked(config, env, env_params))


def make_chunked(config: Config, env, env_params) -> Chunked:
    """The DQN run as a :class:`~mbrl_jax.core.chunked.Chunked`.

    Raises:
      ValueError: continuous actions, or observations that are not vectors.
    """
    discrete_env(env, env_params, "DQN")
    hooks = Hooks(
        init_extra=lambda key: None,
        block_start=lambda run, key: (run, ()),
        sample=lambda run, key: (sample_real(config, run.buffer, key), jnp.int32(0)),
    )
    loop = make_loop(config, env, env_params, hooks, "DQN")
    return loop._replace(finish=lambda run, outs: _finish_dqn(loop, run, outs))


def _finish_dqn(loop: Chunked, run: RunState, outs):
    run, (metrics, _) = loop.finish(run, outs)
    return run, TrainOutput(metrics, run.agent)


def make_loop(config: Config, env, env_params, hooks: Hooks, agent: str) -> Chunked:
    """The phase loop as a :class:`Chunked` whose ``finish`` returns ``(run,
    (StepMetrics [num_steps], infos [num_blocks, ...]))``: ``infos`` stacks
    every block's ``block_start`` info (the last block may be partial).

    A unit is a whole number of blocks (about a twentieth of the run); the
    remaining blocks, a partial block and the last ``num_steps % train_freq``
    steps (no updates) run in ``finish``.
    """
    obs_dim, num_actions = discrete_env(env, env_params, agent)
    tf, g = config.train_freq, config.gradient_steps
    capacity = min(config.buffer_size, config.num_steps)
    total_phases, leftover = divmod(config.num_steps, tf)
    total_blocks, partial = divmod(total_phases, hooks.block_phases)
    blocks_per_unit = max(1, total_blocks // 20)
    num_units, rest_blocks = divmod(total_blocks, blocks_per_unit)
    limit = int(getattr(env_params, "max_steps_in_episode", 1000))

    def collect(run: RunState, key: PRNGKey, n: int):
        """``n`` epsilon-greedy steps: transitions ``[n]`` and step metrics ``[n]``."""
        env_key, bits_key = jax.random.split(key)
        env_keys = jax.random.split(env_key, n)
        bits = jax.random.bits(bits_key, (n, num_actions + 1), jnp.uint32)
        start = run.phase * tf

        def body(carry, x):
            env_state, obs, t = carry
            k, b = x
            q = q_values(config, run.agent.params, obs)
            action = epsilon_greedy(q, epsilon_at(config, t), b)
            next_obs, env_state, reward, terminated, truncated, info = env.step(
                k, env_state, action, env_params
            )
            transition = Transition(obs, action, reward, info["final_observation"], terminated)
            return (env_state, next_obs, t + 1), (transition, terminated | truncated, terminated)

        (env_state, obs, _), (transitions, done, terminated) = jax.lax.scan(
            body, (run.env_state, run.obs, start), (env_keys, bits)
        )
        zeros = jnp.zeros(n, jnp.int32)
        metrics = StepMetrics(
            transitions.reward, done, terminated, zeros, zeros, jnp.zeros(n, jnp.float32)
        )
        run = run._replace(buffer=buffer_add(run.buffer, transitions), env_state=env_state, obs=obs)
        return run, metrics

    def phase(run: RunState, _):
        key = jax.random.fold_in(jax.random.fold_in(run.key, 0), run.phase)
        collect_key, sample_key, update_key = jax.random.split(key, 3)
        run, metrics = collect(run, collect_key, tf)
        batches, planning_rows = hooks.sample(run, sample_key)
        keys = jax.random.split(update_key, g)
        agent, um = jax.lax.scan(
            lambda a, x: update(config, a, x[0], x[1]), run.agent, (keys, batches)
        )
        learn = (run.phase + 1) * tf >= config.learning_starts
        agent = jax.tree.map(lambda new, old: jnp.where(learn, new, old), agent, run.agent)
        updates = jnp.where(learn, g, 0).astype(jnp.int32)
        last = lambda m, v: m.at[-1].set(v)  # noqa: E731
        metrics = metrics._replace(
            q_updates=last(metrics.q_updates, updates),
            planning_updates=last(metrics.planning_updates, updates * planning_rows),
            loss=last(metrics.loss, jnp.where(learn, um.loss.mean(), 0.0)),
        )
        return run._replace(agent=agent, phase=run.phase + 1), metrics

    def block(run: RunState, n_phases: int):
        key = jax.random.fold_in(jax.random.fold_in(run.key, 1), run.phase)
        run, info = hooks.block_start(run, key)
        run, metrics = jax.lax.scan(phase, run, None, length=n_phases)
        return run, (jax.tree.map(lambda m: m.reshape(-1), metrics), info)

    def blocks(run: RunState, n: int):
        run, (metrics, info) = jax.lax.scan(lambda r, _: block(r, hooks.block_phases), run, None, n)
        return run, (jax.tree.map(lambda m: m.reshape(-1), metrics), info)

    def init_run(key: PRNGKey) -> RunState:
        reset_key, agent_key, extra_key, loop_key = jax.random.split(key, 4)
        obs, env_state = env.reset(reset_key, env_params)
        example = Transition(
            state=jnp.zeros(obs_dim, jnp.float32),
            action=jnp.int32(0),
            reward=jnp.float32(0),
            next_state=jnp.zeros(obs_dim, jnp.float32),
            done=jnp.bool_(False),
        )
        return RunState(
            agent=init_dqn(config, agent_key, obs_dim, num_actions),
            buffer=buffer_init(example, capacity),
            env_state=env_state,
            obs=obs,
            phase=jnp.int32(0),
            key=loop_key,
            extra=hooks.init_extra(extra_key),
        )

    def finish(run: RunState, outs):
        metrics, infos = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), outs)
        metrics = jax.tree.map(lambda m: m.reshape(-1), metrics)
        pieces, info_pieces = [metrics], [infos]
        if rest_blocks:
            run, (m, i) = blocks(run, rest_blocks)
            pieces.append(m)
            info_pieces.append(i)
        if partial:
            run, (m, i) = block(run, partial)
            pieces.append(m)
            info_pieces.append(jax.tree.map(lambda x: x[None], i))
        if leftover:
            key = jax.random.fold_in(jax.random.fold_in(run.key, 0), run.phase)
            run, m = collect(run, key, leftover)
            pieces.append(m)
        cat = lambda *xs: jnp.concatenate(xs)  # noqa: E731
        return run, (jax.tree.map(cat, *pieces), jax.tree.map(cat, *info_pieces))

    def greedy(params, key, obs, states):
        return jnp.argmax(q_values(config, params, obs), axis=-1).astype(jnp.int32)

    def evaluate(run: RunState, key: PRNGKey, num_episodes: int = 10) -> EvalResult:
        return evaluate_episodes(
            greedy, env, env_params, run.agent.params, key, num_episodes, limit
        )

    return Chunked(
        init=init_run,
        unit=lambda run: blocks(run, blocks_per_unit),
        finish=finish,
        num_units=num_units,
        unit_steps=blocks_per_unit * hooks.block_phases * tf,
        final_steps=(rest_blocks * hooks.block_phases + partial) * tf + leftover,
        evaluate=evaluate,
        eval_note="greedy policy of the online Q-network, real environment",
        stream=lambda outs: (outs[0].reward.reshape(-1), outs[0].done.reshape(-1)),
    )
