"""Model combinators: new models from old ones, still behind the one contract.

* :func:`with_task` -- replace a model's reward and termination by known
  functions of the observations (what PETS does on its benchmark tasks), and
  optionally subtract a state cost from the reward a planner sees.
* :func:`indexed_states` -- a model over vector observations (the neural
  ensemble) as a model over int32 state indices, through one-hot encodings:
  tabular planners (Dyna, prioritized sweeping) then plan with it.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from mbrl_jax.core.replay import ReplayBuffer
from mbrl_jax.core.types import Array, Model, batch_step


def with_task(
    model: Model,
    reward_fn: Callable[[Array, Array, Array], Array] | None = None,
    termination_fn: Callable[[Array], Array] | None = None,
    state_cost_fn: Callable[[Array], Array] | None = None,
    state_cost: float = 0.0,
) -> Model:
    """``model`` with known reward and termination functions.

    Args:
      model: a model over observation arrays ``[..., D]``.
      reward_fn: ``reward_fn(obs, action, next_obs) -> [...]`` replacing the
        model's reward; ``None`` keeps it.
      termination_fn: ``termination_fn(next_obs) -> [...]`` bool replacing the
        model's ``done``; ``None`` keeps it.
      state_cost_fn: ``state_cost_fn(obs) -> [...]`` non-negative cost of the
        next state, subtracted from the reward ``state_cost`` times.
      state_cost: its weight, ``>= 0``.

    Returns:
      A :class:`Model` with the same ``init`` and ``update``; ``step`` and
      ``batch_step`` (where the model has one) work on any leading batch shape.
    """
    if not state_cost >= 0.0 or state_cost == float("inf"):
        raise ValueError(f"with_task: state_cost must be finite and >= 0, got {state_cost}")
    use_cost = state_cost_fn is not None and state_cost > 0.0

    def replace(obs, action, next_obs, reward, done):
        if reward_fn is not None:
            reward = reward_fn(obs, action, next_obs)
        if use_cost:
            reward = reward - state_cost * state_cost_fn(next_obs)
        if termination_fn is not None:
            done = termination_fn(next_obs)
        return reward, done

    def step(params, key, obs, action):
        next_obs, reward, done = model.step(params, key, obs, action)
        reward, done = replace(obs, action, next_obs, reward, done)
        return next_obs, reward, done

    inner = batch_step(model)

    def step_batch(params, key, obs, actions):
        next_obs, reward, done = inner(params, key, obs, actions)
        reward, done = replace(obs, actions, next_obs, reward, done)
        return next_obs, reward, done

    return model._replace(step=step, batch_step=step_batch)


def indexed_states(model: Model, num_states: int) -> Model:
    """A model over one-hot vectors ``[S]`` as a model over int32 state indices.

    ``step(params, key, s, a)`` steps ``one_hot(s)`` and returns the index of
    the largest entry of the predicted next vector; ``update`` receives
    transitions of indices (a :class:`~mbrl_jax.core.types.Transition` or a
    replay buffer of them) and passes them on one-hot encoded.
    """
    if num_states < 1:
        raise ValueError(f"indexed_states: num_states must be >= 1, got {num_states}")

    def encode(s):
        return jax.nn.one_hot(s, num_states, dtype=jnp.float32)

    def step(params, key, state, action):
        next_vec, reward, done = model.step(params, key, encode(state), action)
        return jnp.argmax(next_vec, axis=-1).astype(jnp.int32), reward, done

    inner = batch_step(model)

    def step_batch(params, key, states, actions):
        next_vec, reward, done = inner(params, key, encode(states), actions)
        return jnp.argmax(next_vec, axis=-1).astype(jnp.int32), reward, done

    def encode_data(data):
        if isinstance(data, ReplayBuffer):
            return data.replace(data=encode_data(data.data))
        return data._replace(state=encode(data.state), next_state=encode(data.next_state))

    update = None
    if model.update is not None:

        def update(params, key, data):
            return model.update(params, key, encode_data(data))

    return Model(init=model.init, step=step, update=update, batch_step=step_batch)
