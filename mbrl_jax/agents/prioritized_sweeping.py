"""Prioritized sweeping (Sutton & Barto, section 8.4) as one compiled training run.

After each real step the pair's model entry is replaced, its TD error is
pushed onto the queue if above ``theta``, and up to ``planning_steps`` pairs
are popped in priority order, updated from the model, and their predecessors
re-queued (see :mod:`mbrl_jax.planners.prioritized_sweeping`). As in the book,
real experience changes Q only through the queue.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax.numpy as jnp

from mbrl_jax.agents.common import check_range
from mbrl_jax.agents.tabular import (
    HyperParams,
    StepMetrics,
    TabularConfig,
    TrainOutput,
    make_tabular_train,
)
from mbrl_jax.models.tabular import (
    DeterministicModel,
    deterministic_model_init,
    deterministic_model_update,
)
from mbrl_jax.planners.prioritized_sweeping import push, sweep, td_error_magnitude
from mbrl_jax.types import Array

__all__ = ["Config", "HyperParams", "StepMetrics", "TrainOutput", "make_train"]


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
    """Agent state: ``q [S, A]``, the last-seen ``model``, the ``priority [S, A]`` queue."""

    q: Array
    model: DeterministicModel
    priority: Array


def make_train(config: Config, env, env_params):
    """Builds ``train(key, hyperparams=None) -> TrainOutput`` for one seed.

    Same contract as :func:`mbrl_jax.agents.dyna_q.make_train`;
    ``metrics.planning_updates`` counts the queue updates actually made (``<= n``).
    """
    n = config.planning_steps
    theta = config.theta

    def init(num_states, num_actions):
        return SweepState(
            q=jnp.zeros((num_states, num_actions), jnp.float32),
            model=deterministic_model_init(num_states, num_actions),
            priority=jnp.zeros((num_states, num_actions), jnp.float32),
        )

    def learn(agent: SweepState, transition, step, seed, hp: HyperParams):
        del step, seed
        model = deterministic_model_update(agent.model, transition)
        s, a = transition.state, transition.action
        error = td_error_magnitude(agent.q, model, s, a, hp.discount)
        priority = push(agent.priority, s, a, error, theta)
        q, priority, updates = sweep(
            agent.q, model, priority, n, hp.learning_rate, hp.discount, theta
        )
        return SweepState(q, model, priority), updates, updates

    return make_tabular_train(config, env, env_params, init, learn)
