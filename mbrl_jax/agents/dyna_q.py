"""Q-learning, Dyna-Q and Dyna-Q+ as one compiled training run.

* ``planning_steps = 0``: one-step tabular Q-learning.
* ``planning_steps = n``: Dyna-Q (Sutton & Barto, section 8.2): after every real
  step, ``n`` Q-learning updates on pairs drawn uniformly from those visited,
  replayed through the last-seen deterministic model.
* ``kappa > 0``: Dyna-Q+ (section 8.3): planning reward
  ``r + kappa * sqrt(tau)``, ``tau`` real steps since the pair was last tried;
  planning draws a visited state and *any* action, untried actions leading
  back to the state with reward 0.

Actions are epsilon-greedy with greedy ties broken at random. The whole run is
one ``lax.scan`` over environment steps, so::

    train = dyna_q.make_train(dyna_q.Config(planning_steps=50), env, params)
    out = jax.jit(jax.vmap(train))(jax.random.split(key, 30))   # 30 seeds

Learning rate, epsilon, discount and kappa can also be batched as traced
values: ``jax.vmap(train)(keys, HyperParams(learning_rate=lrs, ...))``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

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
from mbrl_jax.core.validation import check_choice, check_range
from mbrl_jax.models.tabular import deterministic_model
from mbrl_jax.planners.dyna import (
    VisitedPairs,
    dyna_planning,
    q_learning_update,
    visited_init,
    visited_update,
)

__all__ = [
    "Config",
    "HyperParams",
    "StepMetrics",
    "TrainOutput",
    "make_chunked",
    "make_train",
]

PLANNING_MODES = ("sequential", "batched")


@dataclasses.dataclass(frozen=True)
class Config(TabularConfig):
    """Dyna-Q family settings: :class:`~mbrl_jax.agents.tabular.TabularConfig` plus

    Attributes:
      kappa: Dyna-Q+ bonus weight, ``>= 0``; ``> 0`` switches on Dyna-Q+ (a static
        choice of the planning scheme; the value itself may be traced).
      planning: ``"sequential"`` (textbook) or ``"batched"`` (see
        :func:`mbrl_jax.planners.dyna.dyna_planning`).
    """

    kappa: float = 0.0
    planning: str = "sequential"

    def __post_init__(self):
        super().__post_init__()
        check_range(self, "kappa", low=0.0)
        check_choice(self, "planning", PLANNING_MODES)


class DynaState(NamedTuple):
    """Agent state: ``q [S, A]``, the ``model``'s params, the real pairs visited
    (``memory``, the search control) and ``last_tried [S, A]`` int32 step."""

    q: Array
    model: Any
    memory: VisitedPairs
    last_tried: Array


def make_train(config: Config, env, env_params, model: Model | None = None):
    """``train(key, hyperparams=None) -> TrainOutput``: :func:`make_chunked` in one call."""
    return as_train(make_chunked(config, env, env_params, model))


def make_chunked(config: Config, env, env_params, model: Model | None = None) -> Chunked:
    """Builds the run of one seed as a :class:`~mbrl_jax.core.chunked.Chunked`
    (units of 256 steps; :func:`make_train` is it in one call).

    Args:
      config: :class:`Config`.
      env: gymnax environment with discrete observations (state indices) and actions.
      env_params: its params.
      model: the :class:`~mbrl_jax.core.types.Model` to learn and plan with
        (int32 states and actions); default the last-seen
        :func:`~mbrl_jax.models.tabular.deterministic_model` of the book. A
        count model or a bootstrap ensemble plan the same way.

    Returns:
      The chunked run; ``as_train`` of it is a pure ``train(key, hyperparams=None)``:
      jit it, vmap it over keys (and over :class:`HyperParams`). ``metrics`` hold
      ``reward``, ``done``, ``terminated``, ``planning_updates``
      and ``q_updates`` of shape ``[num_steps]``.

    Raises:
      ValueError: if the env does not observe a discrete state index.
    """
    plus = config.kappa > 0.0
    n = config.planning_steps

    def init(num_states, num_actions, key):
        the_model = model or deterministic_model(num_states, num_actions)
        return DynaState(
            q=jnp.zeros((num_states, num_actions), jnp.float32),
            model=the_model.init(key),
            memory=visited_init(num_states, num_actions),
            last_tried=jnp.zeros((num_states, num_actions), jnp.int32),
        )

    def learn(agent: DynaState, transition, step, seed, hp: HyperParams):
        the_model = model or deterministic_model(*agent.q.shape)
        q = q_learning_update(agent.q, transition, hp.learning_rate, hp.discount)
        params = the_model.update(agent.model, model_key(seed), transition)
        memory = visited_update(agent.memory, transition.state, transition.action)
        last_tried = agent.last_tried.at[transition.state, transition.action].set(step)
        q = dyna_planning(
            q,
            the_model,
            params,
            memory,
            seed,
            n,
            hp.learning_rate,
            hp.discount,
            kappa=hp.kappa if plus else None,
            last_tried=last_tried if plus else None,
            step=step,
            batched=config.planning == "batched",
        )
        return DynaState(q, params, memory, last_tried), jnp.int32(n), jnp.int32(n + 1)

    return make_tabular_chunked(config, env, env_params, init, learn)
