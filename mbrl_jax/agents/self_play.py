"""The self-play driver shared by the search agents (AlphaZero, MuZero).

:func:`make_self_play_train` runs ``num_iterations`` rounds of

1. self-play: ``num_envs`` environments step ``unroll_length`` times, the
   agent's ``act`` choosing every action (a search);
2. learning: the agent's ``learn`` updates its state from the fresh steps;

inside one ``lax.scan``, then evaluates the final agent with its noiseless
``greedy_act`` on fresh episodes. The agents supply only what is theirs: how
to act, what to learn from the steps, what their state is.

Shape letters: N environments, T steps of one iteration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from mbrl_jax.core.chunked import Chunked, EvalResult, as_train, evaluate_episodes
from mbrl_jax.core.returns import completed_returns
from mbrl_jax.core.sharding import ENV_AXIS
from mbrl_jax.core.types import Array, PRNGKey, Transition


class StreamMetrics(NamedTuple):
    """Per-step record of environment 0, ``[num_iterations * unroll_length]`` each."""

    reward: Array
    done: Array


class TrainOutput(NamedTuple):
    """Result of one run of a search agent.

    Attributes:
      metrics: :class:`StreamMetrics` of environment 0 (the stream the comparison
        runner reads).
      mean_return: ``[num_iterations]`` mean return of the episodes that ended in
        each iteration, over all environments (NaN if none did).
      losses: dict of ``[num_iterations]`` mean training losses (``loss``,
        ``policy_loss``, ``value_loss``, and MuZero's ``reward_loss``).
      eval_return: ``[eval_envs]`` returns of the final evaluation episodes
        (search without root noise).
      params: final network params.
    """

    metrics: StreamMetrics
    mean_return: Array
    losses: dict
    eval_return: Array
    params: Any


def make_self_play_chunked(
    env,
    env_params,
    config,
    *,
    init: Callable[[PRNGKey, Array], Any],
    act: Callable[[Any, PRNGKey, Array, Any], tuple[Array, Any]],
    learn: Callable[[Any, PRNGKey, Transition, Array, Array, Any], tuple[Any, dict]],
    greedy_act: Callable[[Any, PRNGKey, Array, Any], Array],
    params_of: Callable[[Any], Any],
    mesh: Mesh | None = None,
) -> Chunked:
    """Builds the run (a :class:`~mbrl_jax.core.chunked.Chunked`, one unit per
    self-play iteration) from an agent's pieces.

    Args:
      env, env_params: a gymnax environment with discrete actions.
      config: the agent's config; its ``num_iterations``, ``num_envs`` and
        ``unroll_length`` set the self-play schedule, ``eval_envs`` and
        ``eval_steps`` the final evaluation (all static).
      init: ``init(key, obs [N, ...]) -> agent`` (network params, optimiser,
        replay, ...).
      act: ``act(agent, key, obs [N, ...], states [N]) -> (actions [N], extras)``;
        ``extras`` (a pytree of ``[N, ...]``) is stored in the steps' ``extras``.
      learn: ``learn(agent, key, steps, truncated, last_obs, last_states) ->
        (agent, losses)``; ``steps`` a :class:`Transition` of ``[T, N, ...]``
        (``next_state`` the final observation before any reset, ``done`` the
        termination), ``truncated [T, N]``, then the observations and states
        after the last step; ``losses`` a dict of scalars.
      greedy_act: ``greedy_act(params, key, obs, states) -> actions`` for
        evaluation, given ``params_of(agent)``.
      params_of: the agent's network params.
      mesh: optional mesh with an ``"envs"`` axis: the environments' batch
        axis is sharded over it (data parallel by sharding annotations; the
        compiler partitions acting and learning and averages the gradients).
        ``num_envs`` must be a multiple of its size.

    Raises:
      ValueError: a mesh without an ``"envs"`` axis, or ``num_envs`` not a
        multiple of its size.
    """
    num_envs, unroll_length = config.num_envs, config.unroll_length
    by_env, by_time_env = _env_constraints(mesh, num_envs)
    step_env = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    reset_env = jax.vmap(env.reset, in_axes=(0, None))

    def play_step(carry, step_key):
        obs, states, agent = carry
        act_key, env_key = jax.random.split(step_key)
        action, extras = act(agent, act_key, obs, states)
        next_obs, next_states, reward, terminated, truncated, info = step_env(
            jax.random.split(env_key, num_envs), states, action, env_params
        )
        step = Transition(obs, action, reward, info["final_observation"], terminated, extras)
        return (by_env(next_obs), by_env(next_states), agent), (step, truncated)

    def iteration(carry, key):
        agent, obs, states, running = carry
        play_key, learn_key = jax.random.split(key)
        (obs, states, _), (steps, truncated) = jax.lax.scan(
            play_step, (obs, states, agent), jax.random.split(play_key, unroll_length)
        )
        steps, truncated = by_time_env((steps, truncated))
        done = steps.done | truncated
        _, mean_return, running = completed_returns(steps.reward, done, running)
        agent, losses = learn(agent, learn_key, steps, truncated, obs, states)
        out = (steps.reward[:, 0], done[:, 0], mean_return, losses)
        return (agent, obs, states, running), out

    def init_run(key: PRNGKey) -> SelfPlayState:
        init_key, reset_key, loop_key, eval_key = jax.random.split(key, 4)
        obs, states = by_env(reset_env(jax.random.split(reset_key, num_envs), env_params))
        agent = init(init_key, obs)
        return SelfPlayState(
            agent, obs, states, jnp.zeros(num_envs), loop_key, eval_key, jnp.int32(0)
        )

    def unit(state: SelfPlayState):
        key = jax.random.split(state.loop_key, config.num_iterations)[state.iteration]
        (agent, obs, states, running), out = iteration(
            (state.agent, state.obs, state.states, state.running), key
        )
        return SelfPlayState(
            agent, obs, states, running, state.loop_key, state.eval_key, state.iteration + 1
        ), out

    def finish(state: SelfPlayState, outs):
        reward, done, mean_return, losses = outs
        evaluation = evaluate(state, state.eval_key, config.eval_envs)
        return state, TrainOutput(
            metrics=StreamMetrics(reward.reshape(-1), done.reshape(-1)),
            mean_return=mean_return,
            losses=losses,
            eval_return=evaluation.returns,
            params=params_of(state.agent),
        )

    def evaluate(state: SelfPlayState, key: PRNGKey, num_episodes: int = 10) -> EvalResult:
        params = params_of(state.agent)
        return evaluate_episodes(
            greedy_act, env, env_params, params, key, num_episodes, config.eval_steps
        )

    return Chunked(
        init=init_run,
        unit=unit,
        finish=finish,
        num_units=config.num_iterations,
        unit_steps=num_envs * unroll_length,
        evaluate=evaluate,
        eval_note="search without root noise, greedy action (real environment)",
        stream=lambda outs: (outs[0].reshape(-1), outs[1].reshape(-1)),
    )


class SelfPlayState(NamedTuple):
    """A self-play run between iterations: the agent, the environments'
    observations and states, the running episode returns, the loop and
    evaluation keys, and the next iteration's index."""

    agent: Any
    obs: Any
    states: Any
    running: Array
    loop_key: PRNGKey
    eval_key: PRNGKey
    iteration: Array


def make_self_play_train(env, env_params, config, **pieces) -> Callable[[PRNGKey], TrainOutput]:
    """``train(key) -> TrainOutput``: :func:`make_self_play_chunked` in one call."""
    return as_train(make_self_play_chunked(env, env_params, config, **pieces))


def _env_constraints(mesh: Mesh | None, num_envs: int):
    """``(by_env, by_time_env)``: constrain pytrees of ``[N, ...]`` / ``[T, N, ...]``
    arrays to be sharded along the mesh's ``"envs"`` axis (identity without a mesh)."""
    if mesh is None:
        return (lambda tree: tree), (lambda tree: tree)
    if ENV_AXIS not in mesh.axis_names:
        raise ValueError(f"mesh needs an {ENV_AXIS!r} axis, has {tuple(mesh.axis_names)}")
    size = mesh.shape[ENV_AXIS]
    if num_envs % size:
        raise ValueError(
            f"num_envs ({num_envs}) must be a multiple of the {size} devices of the "
            f"{ENV_AXIS!r} mesh axis"
        )
    leading = NamedSharding(mesh, PartitionSpec(ENV_AXIS))
    second = NamedSharding(mesh, PartitionSpec(None, ENV_AXIS))

    def constrain(sharding):
        return lambda tree: jax.tree.map(
            lambda x: jax.lax.with_sharding_constraint(x, sharding), tree
        )

    return constrain(leading), constrain(second)
