"""The training loop shared by tabular agents (Q-learning, Dyna-Q/Q+, prioritized sweeping).

An agent supplies ``init(num_states, num_actions, key) -> agent_state`` (a pytree
with ``q [S, A]`` and ``model`` fields) and ``learn(agent_state, transition, step, seed,
hyperparams) -> (agent_state, planning_updates, q_updates)``;
:func:`make_tabular_train` wraps them in the epsilon-greedy acting loop: one
``lax.scan`` over environment steps, optional episode budget, optional greedy
evaluation in the true maze.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from mbrl_jax.agents.common import discrete_sizes, epsilon_greedy
from mbrl_jax.core.chunked import Chunked, as_train, evaluate_episodes
from mbrl_jax.core.random import hashed_bits
from mbrl_jax.core.types import Array, PRNGKey, Transition
from mbrl_jax.core.validation import check_range


@dataclasses.dataclass(frozen=True)
class TabularConfig:
    """Settings every tabular agent has (validated on construction).

    Attributes:
      num_steps: environment steps per run (static).
      planning_steps: model updates per real step, ``n >= 0`` (static).
      learning_rate: step size ``alpha`` in ``(0, 1]``.
      epsilon: exploration probability in ``[0, 1]``.
      discount: ``gamma`` in ``[0, 1]``.
      max_episodes: if set, the agent stops acting and learning after this many
        episodes (later steps report reward 0 and ``done`` False).
      greedy_eval_interval: if ``> 0`` (mazes only), every this many steps the
        greedy policy is rolled out in the true maze and its path length recorded.
    """

    num_steps: int = 3000
    planning_steps: int = 5
    learning_rate: float = 0.1
    epsilon: float = 0.1
    discount: float = 0.95
    max_episodes: int | None = None
    greedy_eval_interval: int = 0

    def __post_init__(self):
        validate_common(self)


def validate_common(config) -> None:
    """Checks the fields every tabular agent config has; ``ValueError`` names the field."""
    check_range(config, "num_steps", low=1)
    check_range(config, "planning_steps", low=0)
    check_range(config, "learning_rate", low=0.0, high=1.0, low_open=True)
    check_range(config, "epsilon", low=0.0, high=1.0)
    check_range(config, "discount", low=0.0, high=1.0)
    check_range(config, "greedy_eval_interval", low=0)
    if config.max_episodes is not None:
        check_range(config, "max_episodes", low=1)
    if config.greedy_eval_interval and config.num_steps % config.greedy_eval_interval:
        raise ValueError(
            f"{type(config).__qualname__}.greedy_eval_interval ({config.greedy_eval_interval}) "
            f"must divide num_steps ({config.num_steps})"
        )


@struct.dataclass
class HyperParams:
    """Values that may be traced (and so vmapped); defaults come from the config.

    Attributes:
      learning_rate, epsilon, discount: ``[]`` float32.
      kappa: ``[]`` float32 Dyna-Q+ bonus weight (ignored by other agents).
    """

    learning_rate: Array
    epsilon: Array
    discount: Array
    kappa: Array

    @classmethod
    def from_config(cls, config) -> HyperParams:
        return cls(
            learning_rate=jnp.float32(config.learning_rate),
            epsilon=jnp.float32(config.epsilon),
            discount=jnp.float32(config.discount),
            kappa=jnp.float32(getattr(config, "kappa", 0.0)),
        )


class StepMetrics(NamedTuple):
    """Per-step metrics, each ``[T]``.

    Attributes:
      reward: reward of the real step.
      done: True at the last step of an episode (terminated or truncated).
      terminated: True where the episode ended in a terminal state.
      planning_updates: int32 model (planning) updates made after the step.
      q_updates: int32 Q-table updates of the step (direct + planning).
    """

    reward: Array
    done: Array
    terminated: Array
    planning_updates: Array
    q_updates: Array


class TrainOutput(NamedTuple):
    """Result of one run.

    Attributes:
      q_values: ``[S, A]`` final action values.
      model: the agent's final model.
      agent_state: the agent's whole final state (model, queue, visit times, ...).
      metrics: :class:`StepMetrics` of shape ``[T]``.
      greedy_path_length: ``[T // greedy_eval_interval]`` int32 path length of the
        greedy policy in the true maze after each interval (``-1``: goal not
        reached); shape ``[0]`` when not evaluated.
    """

    q_values: Array
    model: Any
    agent_state: Any
    metrics: StepMetrics
    greedy_path_length: Array


def model_key(seed: Array) -> PRNGKey:
    """A PRNG key for a model's update or sampling, hashed from a step's ``[]`` uint32
    word (no Threefry: a model that never reads its key costs nothing)."""
    impl = jax.random.key_impl(jax.random.key(0))
    key_words = jax.random.key_data(jax.random.key(0)).shape[-1]
    words = hashed_bits(seed ^ jnp.uint32(0x27D4EB2F), jnp.arange(key_words, dtype=jnp.uint32))
    return jax.random.wrap_key_data(words, impl=impl)


# Steps per chunk of pre-drawn random words (a few KiB per seed).
_CHUNK = 256


class _Carry(NamedTuple):
    agent: Any
    env_state: Any
    obs: Array
    episodes: Array


def greedy_evaluator(env, env_params) -> Callable[[Array, Array], Array]:
    """``evaluate(q, total_steps) -> path length`` of the greedy policy in the true maze.

    Follows the intended moves (no slip) under the wall phase in force after
    ``total_steps`` steps, taking the first best action; ``-1`` if the goal is
    not reached within ``S`` steps.

    Raises:
      ValueError: if ``env`` is not a maze.
    """
    from mbrl_jax.envs.maze import GridMaze
    from mbrl_jax.envs.tabular import to_tabular

    if not isinstance(env, GridMaze):
        raise ValueError("greedy_eval_interval needs a maze environment (GridMaze)")
    mdps = [to_tabular(env, env_params, phase=p, sparse=True) for p in (0, 1)]
    successor = jnp.stack([m.next_state[..., 0] for m in mdps])  # [2, S, A]
    terminal = jnp.stack([m.terminal for m in mdps])
    num_states = successor.shape[1]

    def evaluate(q, total_steps):
        phase = (total_steps >= env_params.change_step).astype(jnp.int32)
        policy = jnp.argmax(q, axis=-1)

        def cond(c):
            s, n = c
            return (~terminal[phase, s]) & (n < num_states)

        def body(c):
            s, n = c
            return successor[phase, s, policy[s]], n + 1

        s, n = jax.lax.while_loop(cond, body, (jnp.asarray(env_params.start, jnp.int32), 0))
        return jnp.where(terminal[phase, s], n, -1).astype(jnp.int32)

    return evaluate


def make_tabular_chunked(config, env, env_params, init: Callable, learn: Callable) -> Chunked:
    """Builds the :class:`~mbrl_jax.core.chunked.Chunked` run of a tabular agent's ``learn``.

    ``as_train`` of it is ``train(key, hyperparams=None) -> TrainOutput``; a unit
    is one block of 256 steps (or ``greedy_eval_interval``), the remainder runs in
    ``finish``.

    Random numbers: each chunk of steps draws one ``jax.random`` word per step
    in a single vectorised call; a step expands its word with the hash of
    :mod:`mbrl_jax.core.random` into the env's key, the epsilon-greedy words and the
    planning seed. Drawing them with ``split``/``bits`` step by step cost about
    three quarters of a real step at 1024 seeds on a CPU (Threefry runs at
    about 8 ns a word there).

    Args:
      config: validated config with ``num_steps``, ``max_episodes``,
        ``greedy_eval_interval`` (and the :class:`HyperParams` fields).
      env, env_params: gymnax env with discrete observations and actions.
      init: ``init(num_states, num_actions, key) -> agent_state`` with fields ``q``
        and ``model`` (the model's params).
      learn: ``learn(agent_state, transition, step, seed, hp) -> (agent_state,
        planning_updates, q_updates)``; ``step`` is the ``[]`` int32 count of real
        steps including this one, ``seed`` a ``[]`` uint32 random word.
    """
    num_states, num_actions = discrete_sizes(env, env_params)
    interval = config.greedy_eval_interval
    evaluate = greedy_evaluator(env, env_params) if interval else None
    num_steps = config.num_steps
    chunk = interval if interval else min(num_steps, _CHUNK)
    num_chunks, remainder = divmod(num_steps, chunk)

    def env_step(carry: _Carry, t: Array, word: Array, key_words: int, impl, hp: HyperParams):
        words = hashed_bits(word, jnp.arange(key_words + num_actions + 2, dtype=jnp.uint32))
        env_key = jax.random.wrap_key_data(words[:key_words], impl=impl)
        bits = words[key_words:]
        action = epsilon_greedy(carry.agent.q[carry.obs], hp.epsilon, bits[: num_actions + 1])
        obs, env_state, reward, terminated, truncated, info = env.step(
            env_key, carry.env_state, action, env_params
        )
        transition = Transition(carry.obs, action, reward, info["final_observation"], terminated)
        agent, planning_updates, q_updates = learn(
            carry.agent, transition, t + 1, bits[num_actions + 1], hp
        )
        done = terminated | truncated
        new = _Carry(agent, env_state, jnp.asarray(obs, jnp.int32), carry.episodes + done)
        metrics = StepMetrics(reward, done, terminated, planning_updates, q_updates)
        if config.max_episodes is not None:
            active = carry.episodes < config.max_episodes
            new = jax.tree.map(lambda a, b: jnp.where(active, a, b), new, carry)
            metrics = jax.tree.map(lambda m: jnp.where(active, m, jnp.zeros_like(m)), metrics)
        return new, metrics

    def init_run(key: PRNGKey, hyperparams: HyperParams | None = None) -> TabularRunState:
        hp = HyperParams.from_config(config) if hyperparams is None else hyperparams
        reset_key, loop_key = jax.random.split(key)
        obs, env_state = env.reset(reset_key, env_params)
        # The model's init key is derived from the loop key by folding in a
        # constant, so existing key streams (reset, loop) stay as they were.
        carry = _Carry(
            agent=init(num_states, num_actions, jax.random.fold_in(loop_key, 0x6D6F64)),
            env_state=env_state,
            obs=jnp.asarray(obs, jnp.int32),
            episodes=jnp.int32(0),
        )
        return TabularRunState(carry, hp, loop_key, jnp.int32(0))

    def chunk_key(state: TabularRunState, index):
        return jax.random.split(state.loop_key, num_chunks + 1)[index]

    def run_chunk(carry, steps, chunk_key, hp):
        impl = jax.random.key_impl(chunk_key)
        key_words = jax.random.key_data(chunk_key).shape[-1]
        words = jax.random.bits(chunk_key, (steps.shape[0],), jnp.uint32)
        return jax.lax.scan(
            lambda c, x: env_step(c, x[0], x[1], key_words, impl, hp), carry, (steps, words)
        )

    def unit(state: TabularRunState):
        steps = state.chunk * chunk + jnp.arange(chunk, dtype=jnp.int32)
        carry, metrics = run_chunk(state.carry, steps, chunk_key(state, state.chunk), state.hp)
        lengths = evaluate(carry.agent.q, steps[-1] + 1) if interval else jnp.int32(0)
        return state._replace(carry=carry, chunk=state.chunk + 1), (metrics, lengths)

    def finish(state: TabularRunState, outs):
        metrics, lengths = outs
        metrics = jax.tree.map(lambda m: m.reshape(num_chunks * chunk), metrics)
        if remainder:
            steps = jnp.arange(num_chunks * chunk, num_steps, dtype=jnp.int32)
            carry, tail = run_chunk(state.carry, steps, chunk_key(state, num_chunks), state.hp)
            metrics = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), metrics, tail)
            state = state._replace(carry=carry)
        if not interval:
            lengths = jnp.zeros((0,), jnp.int32)
        agent = state.carry.agent
        return state, TrainOutput(agent.q, agent.model, agent, metrics, lengths)

    return Chunked(
        init=init_run,
        unit=unit,
        finish=finish,
        num_units=num_chunks,
        unit_steps=chunk,
        final_steps=remainder,
        evaluate=greedy_episodes(env, env_params),
        eval_note="greedy policy of the Q-table (ties at random), real environment",
        stream=lambda outs: (outs[0].reward.reshape(-1), outs[0].done.reshape(-1)),
    )


class TabularRunState(NamedTuple):
    """The state of a tabular run between units: the acting loop's carry, the
    hyper-parameters, the loop's PRNG key and the next unit's index."""

    carry: _Carry
    hp: HyperParams
    loop_key: PRNGKey
    chunk: Array


def make_tabular_train(config, env, env_params, init: Callable, learn: Callable):
    """``train(key, hyperparams=None) -> TrainOutput``: :func:`make_tabular_chunked` in one call."""
    return as_train(make_tabular_chunked(config, env, env_params, init, learn))


def greedy_episodes(env, env_params, max_steps: int | None = None):
    """``evaluate(state, key, num_episodes) -> EvalResult``: episodes of the greedy
    policy (``argmax q[obs]``, ties broken at random as in training: the agent's
    policy without exploration) in the real environment, at most ``max_steps``
    steps each (default the smaller of the env's ``max_steps_in_episode`` and
    4 x its states: a greedy policy that has not ended an episode by then is
    going round in circles)."""
    num_states, num_actions = discrete_sizes(env, env_params)
    limit = int(getattr(env_params, "max_steps_in_episode", 4 * num_states))
    cap = max_steps or min(limit, 4 * num_states)

    def act(q, key, obs, states):
        # Tie-breaking words hashed from the step's key (Threefry in the loop
        # body would double the compile time).
        seed = jax.random.key_data(key).reshape(-1)[-1]
        counter = jnp.arange(obs.shape[0] * (num_actions + 1)).reshape(obs.shape[0], -1)
        bits = hashed_bits(seed, counter)
        return jax.vmap(epsilon_greedy, in_axes=(0, None, 0))(q[obs], jnp.float32(0.0), bits)

    def evaluate(state, key, num_episodes: int = 10):
        return evaluate_episodes(act, env, env_params, state.carry.agent.q, key, num_episodes, cap)

    return evaluate
