"""Prioritized sweeping (Sutton & Barto, section 8.4) as one compiled training run.

After each real step the pair's model entry is replaced, its TD error is
pushed onto the queue if above ``theta``, and up to ``planning_steps`` pairs
are popped in priority order, updated from the model, and their predecessors
re-queued (see :mod:`mbrl_jax.planners.prioritized_sweeping`). As in the book,
real experience changes Q only through the queue.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from mbrl_jax.agents.tabular import (
    HyperParams,
    StepMetrics,
    TabularConfig,
    TrainOutput,
    make_tabular_chunked,
    model_key,
)
from mbrl_jax.core.chunked import Chunked, as_train
from mbrl_jax.core.types import Array, Model
from mbrl_jax.core.validation import check_range
from mbrl_jax.models.tabular import deterministic_model
from mbrl_jax.planners.prioritized_sweeping import (
    Outcomes,
    predict_all_pairs,
    push,
    sweep,
    td_error_magnitude,
)

__all__ = [
    "Config",
    "HyperParams",
    "StepMetrics",
    "TrainOutput",
    "make_chunked",
    "make_train",
]


@dataclasses.dataclass(frozen=True)
class Config(TabularConfig):
    """Prioritized sweeping settings: :class:`~mbrl_jax.agents.tabular.TabularConfig`
    (``planning_steps`` is the most queue updates per real step) plus

    Attributes:
      theta: priority threshold, ``>= 0``.
    """

    theta: float = 1e-4

    def __post_init__(self):
        super().__post_init__()
        check_range(self, "theta", low=0.0)


class SweepState(NamedTuple):
    """Agent state: ``q [S, A]``, the ``model``'s params, ``visited [S, A]`` bool
    (pairs tried in the real environment, the only predecessors considered) and
    the ``priority [S, A]`` queue."""

    q: Array
    model: Any
    visited: Array
    priority: Array


def make_train(config: Config, env, env_params, model: Model | None = None):
    """``train(key, hyperparams=None) -> TrainOutput``: :func:`make_chunked` in one call."""
    return as_train(make_chunked(config, env, env_params, model))


def make_chunked(config: Config, env, env_params, model: Model | None = None) -> Chunked:
    """Builds the run of one seed as a :class:`~mbrl_jax.core.chunked.Chunked`
    (units of 256 steps; :func:`make_train` is it in one call).

    Same contract as :func:`mbrl_jax.agents.dyna_q.make_train` (``model``
    defaults to the last-seen deterministic model);
    ``metrics.planning_updates`` counts the queue updates actually made (``<= n``).
    """
    n = config.planning_steps
    theta = config.theta

    def init(num_states, num_actions, key):
        the_model = model or deterministic_model(num_states, num_actions)
        return SweepState(
            q=jnp.zeros((num_states, num_actions), jnp.float32),
            model=the_model.init(key),
            visited=jnp.zeros((num_states, num_actions), bool),
            priority=jnp.zeros((num_states, num_actions), jnp.float32),
        )

    def learn(agent: SweepState, transition, step, seed, hp: HyperParams):
        del step
        num_states, num_actions = agent.q.shape
        the_model = model or deterministic_model(num_states, num_actions)
        update_key, predict_key = jax.random.split(model_key(seed))
        params = the_model.update(agent.model, update_key, transition)
        visited = agent.visited.at[transition.state, transition.action].set(True)
        if model is None:
            # The last-seen model's tables already are its `step` over every pair
            # (bit-identical), so they are read as they are instead of copied
            # through a vmapped `step`.
            outcomes = Outcomes(params.next_state, params.reward, params.done.astype(jnp.float32))
        else:
            outcomes = predict_all_pairs(the_model, params, predict_key, num_states, num_actions)
        s, a = transition.state, transition.action
        error = td_error_magnitude(agent.q, outcomes, s, a, hp.discount)
        priority = push(agent.priority, s, a, error, theta)
        q, priority, updates = sweep(
            agent.q, outcomes, visited, priority, n, hp.learning_rate, hp.discount, theta
        )
        return SweepState(q, params, visited, priority), updates, updates

    return make_tabular_chunked(config, env, env_params, init, learn)
