"""Acting by tree search with the true model at every step (no learning).

``train(key)`` runs ``num_steps`` environment steps; at each one a search from
the current state with the environment itself as the model
(:func:`mbrl_jax.models.env_model`) picks the action. The
default is classic MCTS: UCB1 selection and leaf values from batched random
rollouts (:func:`mbrl_jax.planners.search.rollout_evaluator`). The output
follows the tabular agents' per-step metrics, so the comparison runner reads
it the same way.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from mbrl_jax.agents.common import num_discrete_actions
from mbrl_jax.core.chunked import Chunked, EvalResult, as_train
from mbrl_jax.core.types import Array, PRNGKey
from mbrl_jax.core.validation import check_range
from mbrl_jax.models.true_env import env_model
from mbrl_jax.planners.search import SearchConfig, make_search, rollout_evaluator


@dataclasses.dataclass(frozen=True)
class Config:
    """MCTS agent settings (validated on construction).

    Attributes:
      num_steps: environment steps to run.
      max_episodes: stop acting after this many episodes (``None``: no limit);
        later steps are recorded as not taken.
      search: :class:`~mbrl_jax.planners.search.SearchConfig` (default UCB1,
        200 simulations, discount 0.95, ``c = 6``). UCB1 compares Q values
        min-max normalised to ``[0, 1]`` among siblings, which stretches the
        small, noisy differences of sparse rollout values to the full range;
        a larger ``c`` than the textbook's 1.41 keeps such noise from
        deciding. On ``DynaMaze`` (5 seeds, 2 episodes each) ``c`` = 0.25,
        0.5, 1.41, 3 and 6 give 23.4, 21.5, 16.7, 14.8 and 14.0 steps per
        episode at 2,000 simulations (14 is the shortest path); at 200
        simulations ``c`` = 3 and 6 give 15.3 and 15.6.
      num_rollouts: random rollouts per leaf, all batched in one model step.
      rollout_depth: steps of each rollout.
    """

    num_steps: int = 1000
    max_episodes: int | None = None
    search: SearchConfig = dataclasses.field(
        default_factory=lambda: SearchConfig(
            num_simulations=200, policy="ucb1", discount=0.95, ucb_c=6.0
        )
    )
    num_rollouts: int = 64
    rollout_depth: int = 50

    def __post_init__(self):
        for name in ("num_steps", "num_rollouts", "rollout_depth"):
            check_range(self, name, low=1)
        if self.max_episodes is not None:
            check_range(self, "max_episodes", low=1)


class StepMetrics(NamedTuple):
    """Per-step record, each ``[num_steps]``: reward, episode end, whether the step was taken,
    and the root value of the search."""

    reward: Array
    done: Array
    active: Array
    root_value: Array


class TrainOutput(NamedTuple):
    """Result of one run: ``metrics`` (:class:`StepMetrics`, ``[num_steps]`` each)."""

    metrics: StepMetrics


def make_train(config: Config, env, env_params):
    """``train(key) -> TrainOutput`` (jit/vmap it over seeds): :func:`make_chunked` in one call."""
    return as_train(make_chunked(config, env, env_params))


class MctsRunState(NamedTuple):
    """A run between blocks of steps: the next step ``t``, the environment's
    state, episodes completed, the loop key, the running episode's return and
    length, and the last completed episode's (NaN and 0 before one ends)."""

    t: Array
    env_state: Any
    episodes: Array
    loop_key: PRNGKey
    running: Array
    length: Array
    last: EvalResult


def make_chunked(config: Config, env, env_params) -> Chunked:
    """Builds the run in blocks of ``num_steps // 20`` steps (at least 1; the
    remainder in ``finish``)."""
    num_actions = num_discrete_actions(env, env_params)
    model = env_model(env, env_params)
    evaluate = rollout_evaluator(
        model, num_actions, config.num_rollouts, config.rollout_depth, config.search.discount
    )
    search = make_search(config.search, model, evaluate, num_actions)
    max_episodes = config.max_episodes or 2**30
    n = config.num_steps
    block = max(1, n // 20)
    num_blocks, remainder = divmod(n, block)

    def init_run(key: PRNGKey) -> MctsRunState:
        reset_key, loop_key = jax.random.split(key)
        _, state = env.reset(reset_key, env_params)
        none = EvalResult(jnp.full((1,), jnp.nan, jnp.float32), jnp.zeros((1,), jnp.int32))
        zero = jnp.int32(0)
        return MctsRunState(zero, state, zero, loop_key, jnp.float32(0), zero, none)

    def run_block(run: MctsRunState, size: int):
        start = run.t
        metrics = StepMetrics(
            reward=jnp.zeros(size, jnp.float32),
            done=jnp.zeros(size, bool),
            active=jnp.zeros(size, bool),
            root_value=jnp.zeros(size, jnp.float32),
        )

        # A while loop rather than a scan: with max_episodes it stops once every
        # episode is over (under vmap, once every seed's are), instead of
        # searching through the remaining steps.
        def cond(carry):
            i, run, _ = carry
            return (i < size) & (run.episodes < max_episodes)

        def body(carry):
            i, run, metrics = carry
            t = start + i
            search_key, env_key = jax.random.split(jax.random.fold_in(run.loop_key, t))
            result = search(None, None, search_key, jax.tree.map(lambda x: x[None], run.env_state))
            _, state, reward, terminated, truncated, _ = env.step(
                env_key, run.env_state, result.action[0], env_params
            )
            done = terminated | truncated
            reward = reward.astype(jnp.float32)
            metrics = StepMetrics(
                reward=metrics.reward.at[i].set(reward),
                done=metrics.done.at[i].set(done),
                active=metrics.active.at[i].set(True),
                root_value=metrics.root_value.at[i].set(result.value[0]),
            )
            running, length = run.running + reward, run.length + 1
            ended = EvalResult(running[None], length[None])
            run = run._replace(
                env_state=state,
                episodes=run.episodes + done.astype(jnp.int32),
                running=jnp.where(done, 0.0, running),
                length=jnp.where(done, 0, length),
                last=jax.tree.map(lambda a, b: jnp.where(done, a, b), ended, run.last),
            )
            return i + 1, run, metrics

        _, run, metrics = jax.lax.while_loop(cond, body, (jnp.int32(0), run, metrics))
        return run._replace(t=start + size), metrics

    def finish(run: MctsRunState, outs):
        metrics = jax.tree.map(lambda m: m.reshape(num_blocks * block), outs)
        if remainder:
            run, tail = run_block(run, remainder)
            metrics = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), metrics, tail)
        return run, TrainOutput(metrics)

    def last_episode(run: MctsRunState, _key: PRNGKey, _num_episodes: int = 1) -> EvalResult:
        return run.last  # MCTS does not learn: every episode runs its one policy

    return Chunked(
        init=init_run,
        unit=lambda run: run_block(run, block),
        finish=finish,
        num_units=num_blocks,
        unit_steps=block,
        final_steps=remainder,
        evaluate=last_episode,
        eval_note="the last completed episode (MCTS does not learn: it acts with one policy)",
        stream=lambda outs: (outs.reward.reshape(-1), outs.done.reshape(-1)),
    )
