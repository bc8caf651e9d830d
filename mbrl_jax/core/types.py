"""The library's shared vocabulary: array aliases, shape letters, ``Transition``, ``Model``.

Shape letters (one letter, one meaning, everywhere in the library's docstrings):

=====  ==============================================================
``B``  batch: roots of a search, minibatch items, environments of a batch
``N``  particles or items stepped together by a batched model step
``E``  ensemble members
``P``  candidate action sequences of a shooting planner (population)
``K``  particles per candidate sequence (shooting), unroll steps (MuZero)
       -- never a count of successors (sparse MDPs use ``J``)
``J``  successors stored per state-action pair in a sparse MDP
``H``  planning or imagination horizon
``T``  time steps of a run or of a trajectory
``S``  states of a finite MDP
``A``  actions (number of discrete actions, or the size of a continuous action)
``D``  size of a vector observation or model state
``L``  size of a latent state
=====  ==============================================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax

PRNGKey = chex.PRNGKey
Array = chex.Array
ModelParams = Any
ModelState = Any

#: ``step(params, key, state, action) -> (next_state, reward, done)`` for ONE state.
#: ``done`` is a bool or a termination probability in ``[0, 1]``.
StepFn = Callable[[ModelParams, PRNGKey, ModelState, Array], tuple[ModelState, Array, Array]]

#: ``batch_step(params, key, states [N, ...], actions [N, ...]) -> (next [N, ...], reward [N],
#: done [N])``: one key for the whole batch.
BatchStepFn = Callable[[ModelParams, PRNGKey, ModelState, Array], tuple[ModelState, Array, Array]]


class Transition(NamedTuple):
    """One transition, or a batch of them (every field with the same leading shape).

    The one transition format of the library: replay buffers store it, models
    fit on it, agents record it.

    Attributes:
      state: ``[...]`` state index (tabular) or ``[..., D]`` observation / model state.
      action: ``[...]`` int action or ``[..., A]`` continuous action.
      reward: ``[...]`` reward.
      next_state: same shape as ``state``: the state after the step, before any
        automatic reset (gymnax's ``info["final_observation"]``).
      done: ``[...]`` bool, True where the step ended the episode by termination
        (not by time-limit truncation, which does not make a state terminal).
      extras: optional pytree of per-transition extras (a search policy, the
        parts of an n-step target, ...), ``None`` when there are none.
    """

    state: Array
    action: Array
    reward: Array
    next_state: Array
    done: Array
    extras: Any = None


class Model(NamedTuple):
    """Every model of the library, as a bundle of pure functions.

    A model is built by a factory (``count_model(S, A)``, ``ensemble_model(config)``,
    ``env_model(env, env_params)``, ...) and used by every planner through these
    functions only, so any planner plans with any model whose states and
    actions it can handle.

    Attributes:
      init: ``init(key) -> params``: a fresh model (no data yet).
      step: ``step(params, key, state, action) -> (next_state, reward, done)``
        for ONE state (a pytree); callers ``vmap`` it. ``done`` is a bool or a
        termination probability.
      update: ``update(params, key, data) -> params``: learn from data (one
        :class:`Transition`, a batch, or a replay buffer, as the model's
        factory documents); ``None`` for a model that does not learn from
        transitions by itself (the true environment; MuZero's latent model,
        which its agent's loss trains).
      batch_step: optional :data:`BatchStepFn` stepping ``N`` states at once
        faster than ``vmap(step)`` (the neural ensemble's particle
        propagation); :func:`batch_step` falls back to ``vmap(step)``.
    """

    init: Callable[[PRNGKey], ModelParams]
    step: StepFn
    update: Callable[[ModelParams, PRNGKey, Any], ModelParams] | None = None
    batch_step: BatchStepFn | None = None


def batch_step(model: Model) -> BatchStepFn:
    """The model's step over a batch ``[N]`` of states with one key.

    ``model.batch_step`` where the model has one, otherwise ``step`` vmapped
    over the states with one key per state split from ``key``.
    """
    if model.batch_step is not None:
        return model.batch_step
    vmapped = jax.vmap(model.step, in_axes=(None, 0, 0, 0))

    def step_batch(params, key, states, actions):
        n = jax.tree.leaves(actions)[0].shape[0]
        return vmapped(params, jax.random.split(key, n), states, actions)

    return step_batch
