"""A training run cut into equal units, so it can stop, report and resume between them.

Every agent's ``train(key)`` is one compiled call; for a run of minutes a user
wants to see where it is, to save it, and to resume it after a crash. An agent
that supports this builds a :class:`Chunked`:

* ``init(key, *args) -> state`` -- the run's whole state (agent, environment,
  PRNG keys, step counters) as a pytree of arrays;
* ``unit(state) -> (state, out)`` -- one unit of training (a block of
  environment steps, one self-play iteration, one trial), always the same
  shapes, so ``lax.scan`` can repeat it;
* ``finish(state, outs) -> (state, output)`` -- whatever follows the last unit
  (a remainder of steps, the final evaluation) and the agent's ``TrainOutput``
  from the stacked unit outputs ``outs [num_units, ...]``;
* ``evaluate(state, key, num_episodes) -> EvalResult`` -- the agent's
  evaluation policy's returns at this point of the run (greedy / noiseless),
  ``[num_episodes]`` per seed (``num_episodes`` static).

:func:`as_train` composes them into the one-call ``train(key)`` (what the
agents' ``make_train`` returns), :func:`run_units` into ``run(state) ->
(state, outs [n, ...])`` for ``n`` units; ``train`` and ``n``-unit pieces run
the same operations on the same keys, so a run driven chunk by chunk from
Python (:mod:`mbrl_jax.experiments.chunked_run`) gives the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from mbrl_jax.core.types import Array, PRNGKey


class EvalResult(NamedTuple):
    """Evaluation of one seed at one point of a run.

    Attributes:
      returns: ``[E]`` undiscounted returns of ``E`` evaluation episodes.
      lengths: ``[E]`` int32 steps of each (the episode cap where it did not end).
    """

    returns: Array
    lengths: Array


class Chunked(NamedTuple):
    """A training run as ``init``, a repeated ``unit`` and ``finish`` (see the module doc).

    Attributes:
      init: ``init(key, *args) -> state``.
      unit: ``unit(state) -> (state, out)``.
      finish: ``finish(state, outs) -> (state, output)``; ``outs`` stacks the
        ``num_units`` unit outputs along a new leading axis.
      num_units: units in a whole run (static, ``>= 0``).
      unit_steps: real environment steps one unit takes per seed, every
        parallel environment counted (for progress and budgets).
      final_steps: real steps ``finish`` still takes (a remainder).
      initial_steps: real steps ``init`` already takes (e.g. random steps
        collected before the first unit).
      evaluate: ``evaluate(state, key, num_episodes) -> EvalResult`` or ``None``.
      eval_note: how ``evaluate`` evaluates (one line, for reports).
      stream: ``stream(outs) -> (reward [n * T], done [n * T])``: the steps of
        ``n`` stacked unit outputs of one seed as the training reward stream
        (for progress: the returns of the episodes that end in a chunk).
    """

    init: Callable[..., Any]
    unit: Callable[[Any], tuple[Any, Any]]
    finish: Callable[[Any, Any], tuple[Any, Any]]
    num_units: int
    unit_steps: int
    final_steps: int = 0
    evaluate: Callable[[Any, PRNGKey, int], EvalResult] | None = None
    eval_note: str = ""
    stream: Callable[[Any], tuple[Array, Array]] | None = None
    initial_steps: int = 0

    @property
    def total_steps(self) -> int:
        """Real environment steps per seed of the whole run."""
        return self.initial_steps + self.num_units * self.unit_steps + self.final_steps


def run_units(chunked: Chunked, n: int) -> Callable[[Any], tuple[Any, Any]]:
    """``run(state) -> (state, outs [n, ...])``: ``n`` units in one ``lax.scan``."""
    if n < 1:
        raise ValueError(f"run_units: n must be >= 1, got {n}")

    def run(state):
        return jax.lax.scan(lambda s, _: chunked.unit(s), state, None, length=n)

    return run


def as_train(chunked: Chunked) -> Callable[..., Any]:
    """``train(key, *args) -> output``: the whole run as one pure function."""

    def train(key: PRNGKey, *args):
        state = chunked.init(key, *args)
        if chunked.num_units:
            state, outs = run_units(chunked, chunked.num_units)(state)
        else:
            outs = empty_outs(chunked, state)
        return chunked.finish(state, outs)[1]

    return train


def empty_outs(chunked: Chunked, state):
    """The stacked unit outputs of zero units, for ``finish`` of a run with none."""
    shapes = jax.eval_shape(lambda s: chunked.unit(s)[1], state)
    return jax.tree.map(lambda s: jnp.zeros((0, *s.shape), s.dtype), shapes)


def chunk_sizes(num_units: int, chunks: int) -> int:
    """Units per chunk: the largest divisor of ``num_units`` that gives at least
    ``chunks`` chunks (one compiled chunk shape; 1 when ``num_units`` is prime)."""
    if num_units <= 0:
        return 1
    target = max(1, num_units // max(1, chunks))
    for size in range(target, 0, -1):
        if num_units % size == 0:
            return size
    return 1


def evaluate_episodes(act, env, env_params, params, key, num_envs: int, num_steps: int):
    """The first episode of each of ``num_envs`` environments under ``act``.

    ``act(params, key, obs [N, ...], states [N]) -> actions [N]``; every
    environment runs ``num_steps`` steps (one ``lax.scan``) and its return
    counts rewards until its first episode ends.

    Returns:
      :class:`EvalResult` of ``[num_envs]``: returns, and lengths (``num_steps``
      where the episode did not end).
    """
    reset_key, loop_key = jax.random.split(key)
    obs, states = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(reset_key, num_envs), env_params
    )
    # Every step's keys drawn before the loop in one vectorised call: Threefry
    # inside the loop body doubles the compile time.
    keys = jax.random.split(loop_key, num_steps * (num_envs + 1)).reshape(num_steps, -1)
    act_keys, env_keys = keys[:, 0], keys[:, 1:]

    def body(carry, step_keys):
        obs, states, alive, total, length = carry
        act_key, env_key = step_keys
        actions = act(params, act_key, obs, states)
        obs, states, reward, terminated, truncated, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            env_key, states, actions, env_params
        )
        total = total + alive * reward
        length = length + alive.astype(jnp.int32)
        alive = alive * (1.0 - (terminated | truncated).astype(jnp.float32))
        return (obs, states, alive, total, length), None

    init = (obs, states, jnp.ones(num_envs), jnp.zeros(num_envs), jnp.zeros(num_envs, jnp.int32))
    (*_, total, length), _ = jax.lax.scan(body, init, (act_keys, env_keys))
    return EvalResult(total, length)
