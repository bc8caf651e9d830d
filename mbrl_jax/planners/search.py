"""Batched tree search through mctx with any model: Gumbel MuZero, PUCT, classic UCB1 MCTS.

:func:`make_search` turns a :class:`~mbrl_jax.core.types.Model` and an
evaluation function into an mctx ``recurrent_fn`` and root, and returns
``search(model_params, eval_params, key, states) -> SearchResult`` for a batch
of ``B`` roots in one compiled call:

* the model steps the states of the tree (any pytree: a gymnax env state, a
  tabular state index, an observation vector, a latent vector) through its
  batched step. The environment itself (:func:`mbrl_jax.models.env_model`,
  AlphaZero), a tabular model, the neural ensemble or a learned latent
  dynamics network (MuZero) all fit.
* ``evaluate(eval_params, key, states) -> (prior_logits [B, A], value [B])``
  evaluates a batch of states: a policy/value network, or
  :func:`rollout_evaluator` (uniform prior and the mean return of random
  rollouts through a model, classic MCTS). Model and evaluator keep their own
  params.

Transitions with ``done`` get discount 0, so the search does not add value
from beyond a terminal state, and the value of a terminal node is 0.
``action_mask(model_params, state) -> [A] bool`` (valid actions) optionally masks
actions at the root (``invalid_actions``) and, through the prior, inside the
tree.

Policies (``SearchConfig.policy``):

* ``"gumbel"`` (default): ``mctx.gumbel_muzero_policy``, sequential halving
  with Gumbel noise at the root; improves the policy with few simulations.
* ``"muzero"``: ``mctx.muzero_policy``, PUCT with Dirichlet noise at the root;
  the action is sampled from the visit counts at ``temperature``.
* ``"ucb1"``: classic MCTS as textbooks write it: UCB1
  ``Q + c sqrt(ln N / n)`` at every node (unvisited children first; ``Q``
  min-max normalised over the node and its children, so ``c`` does not depend
  on the reward scale), expansion
  of one leaf per simulation, its value from ``evaluate`` (random rollouts with
  :func:`rollout_evaluator`), backup of the discounted return; the action is the
  most visited one.

Shape letters: B roots, A actions.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import mctx

from mbrl_jax.core.rollout import rollout
from mbrl_jax.core.types import Array, Model, PRNGKey, batch_step
from mbrl_jax.core.validation import check_choice, check_range

POLICIES = ("gumbel", "muzero", "ucb1")


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """Search settings (validated on construction; all static).

    Attributes:
      num_simulations: simulations per root, ``>= 1``.
      policy: ``"gumbel"``, ``"muzero"`` or ``"ucb1"``.
      discount: discount of the search, in ``[0, 1]``.
      max_depth: deepest node a simulation may reach (``None``: no limit).
      max_num_considered_actions: Gumbel: actions sampled at the root.
      gumbel_scale: Gumbel: scale of the root noise (0 for a deterministic search).
      dirichlet_fraction, dirichlet_alpha, pb_c_init, pb_c_base: PUCT settings.
      temperature: PUCT: temperature of the action sampled from the visit counts.
      ucb_c: UCB1's exploration constant ``c``.
    """

    num_simulations: int = 32
    policy: str = "gumbel"
    discount: float = 0.997
    max_depth: int | None = None
    max_num_considered_actions: int = 16
    gumbel_scale: float = 1.0
    dirichlet_fraction: float = 0.25
    dirichlet_alpha: float = 0.3
    pb_c_init: float = 1.25
    pb_c_base: float = 19652.0
    temperature: float = 1.0
    ucb_c: float = 1.4142135

    def __post_init__(self):
        check_range(self, "num_simulations", low=1)
        check_choice(self, "policy", POLICIES)
        check_range(self, "discount", low=0.0, high=1.0)
        if self.max_depth is not None:
            check_range(self, "max_depth", low=1)
        check_range(self, "max_num_considered_actions", low=1)
        check_range(self, "gumbel_scale", low=0.0)
        check_range(self, "dirichlet_fraction", low=0.0, high=1.0)
        for name in ("dirichlet_alpha", "temperature", "ucb_c", "pb_c_base", "pb_c_init"):
            check_range(self, name, low=0.0, low_open=True)

    def noiseless(self) -> SearchConfig:
        """The same search without root noise (for evaluation): no Gumbel or Dirichlet
        noise, PUCT's action the most visited."""
        return dataclasses.replace(self, gumbel_scale=0.0, temperature=1e-3, dirichlet_fraction=0.0)


class SearchResult(NamedTuple):
    """Output of one search over ``B`` roots.

    Attributes:
      action: ``[B]`` int32 chosen actions.
      policy: ``[B, A]`` improved policy (training target): the visit
        distribution (PUCT, UCB1) or Gumbel MuZero's completed-Q policy.
      value: ``[B]`` root value after the search.
      visit_counts: ``[B, A]`` root visit counts.
      q_values: ``[B, A]`` root Q-values (0 where unvisited).
    """

    action: Array
    policy: Array
    value: Array
    visit_counts: Array
    q_values: Array


def rollout_evaluator(
    model: Model,
    num_actions: int,
    num_rollouts: int = 16,
    depth: int = 50,
    discount: float = 0.997,
) -> Callable:
    """Classic MCTS leaf evaluation: uniform prior, value = mean return of random rollouts.

    ``num_rollouts`` rollouts of ``depth`` uniformly random actions start from
    each state, all ``B x num_rollouts`` of them in one
    :func:`~mbrl_jax.core.rollout.rollout` through ``model``. A rollout stops
    adding reward after its first ``done``.

    Returns:
      ``evaluate(model_params, key, states [B]) -> (zeros [B, A], value [B])``.
    """
    if num_rollouts < 1 or depth < 1:
        raise ValueError(
            f"rollout_evaluator: num_rollouts and depth must be >= 1, got {num_rollouts}, {depth}"
        )

    def evaluate(params, key, states):
        batch = jax.tree.leaves(states)[0].shape[0]
        n = batch * num_rollouts
        particles = jax.tree.map(lambda x: jnp.repeat(x, num_rollouts, axis=0), states)

        def random_policy(key, states, t):
            return jax.random.randint(key, (n,), 0, num_actions)

        result = rollout(
            model, random_policy, params, key, particles, depth, discount, keep_trajectory=False
        )
        value = result.discounted_return.reshape(batch, num_rollouts).mean(-1)
        return jnp.zeros((batch, num_actions)), value

    return evaluate


def _ucb1_selection(c: float):
    def select(rng_key, tree, node_index, depth):
        visits = tree.children_visits[node_index]
        # Q min-max normalised over the node and its children, so that ``c``
        # means the same whatever the scale of the returns.
        q = mctx.qtransform_by_parent_and_siblings(tree, node_index)
        parent = jnp.maximum(tree.node_visits[node_index], 1).astype(jnp.float32)
        bonus = c * jnp.sqrt(jnp.log(parent) / jnp.maximum(visits, 1))
        noise = jax.random.uniform(rng_key, visits.shape)
        # Unvisited children first, in random order; ties among visited ones at random.
        score = jnp.where(visits == 0, 1e9 + noise, q + bonus + 1e-6 * noise)
        invalid = tree.root_invalid_actions * (depth == 0)
        return jnp.argmax(jnp.where(invalid > 0, -jnp.inf, score)).astype(jnp.int32)

    return select


def make_search(
    config: SearchConfig,
    model: Model,
    evaluate: Callable,
    num_actions: int,
    action_mask: Callable | None = None,
) -> Callable[[Any, Any, PRNGKey, Any], SearchResult]:
    """Builds ``search(model_params, eval_params, key, states) -> SearchResult``.

    Args:
      config: :class:`SearchConfig`.
      model: any :class:`~mbrl_jax.core.types.Model` with ``num_actions``
        discrete actions; ``done`` a bool or a termination probability.
      evaluate: ``(eval_params, key, states [B]) -> (prior_logits [B, A], value [B])``.
      num_actions: ``A``; must match ``evaluate``'s logits (checked when traced).
      action_mask: optional ``(model_params, state) -> [A] bool`` valid actions.

    Returns:
      ``search(model_params, eval_params, key, states)`` over a batch of roots:
      ``states`` is a pytree with a leading ``[B]`` axis. Jit it (or the
      function that calls it).

    Raises:
      ValueError: ``num_actions < 2``; at trace time, ``evaluate`` returning
        shapes other than ``[B, A]`` and ``[B]``, or the model returning a
        reward or done that is not a scalar per state.
    """
    if num_actions < 2:
        raise ValueError(f"make_search: num_actions must be >= 2, got {num_actions}")
    c = config
    step = batch_step(model)
    mask_fn = None if action_mask is None else jax.vmap(action_mask, in_axes=(None, 0))

    def checked_evaluate(params, key, states, batch):
        logits, value = evaluate(params, key, states)
        if jnp.shape(logits) != (batch, num_actions) or jnp.shape(value) != (batch,):
            raise ValueError(
                f"make_search: evaluate must return prior_logits [B, A] = {(batch, num_actions)} "
                f"and value [B] = {(batch,)}, got {jnp.shape(logits)} and {jnp.shape(value)} "
                "(does the model's action count match the environment's?)"
            )
        return jnp.asarray(logits, jnp.float32), jnp.asarray(value, jnp.float32)

    def masked(params, states, logits):
        if mask_fn is None:
            return logits
        return jnp.where(mask_fn(params, states), logits, -1e9)

    def recurrent_fn(params, key, action, embedding):
        model_params, eval_params = params
        batch = action.shape[0]
        step_key, eval_key = jax.random.split(key)
        next_states, reward, done = step(model_params, step_key, embedding, action)
        if jnp.shape(reward) != (batch,) or jnp.shape(done) != (batch,):
            raise ValueError(
                "make_search: the model must return a scalar reward and done per state, got "
                f"shapes {jnp.shape(reward)[1:]} and {jnp.shape(done)[1:]}"
            )
        logits, value = checked_evaluate(eval_params, eval_key, next_states, batch)
        alive = 1.0 - jnp.asarray(done, jnp.float32)
        out = mctx.RecurrentFnOutput(
            reward=jnp.asarray(reward, jnp.float32),
            discount=c.discount * alive,
            prior_logits=masked(model_params, next_states, logits),
            value=value * alive,
        )
        return out, next_states

    def search(model_params, eval_params, key: PRNGKey, states) -> SearchResult:
        batch = jax.tree.leaves(states)[0].shape[0]
        root_key, search_key = jax.random.split(key)
        logits, value = checked_evaluate(eval_params, root_key, states, batch)
        params = (model_params, eval_params)
        invalid = None
        if mask_fn is not None:
            valid = mask_fn(model_params, states)
            logits = jnp.where(valid, logits, -1e9)
            invalid = (~valid).astype(jnp.float32)
        root = mctx.RootFnOutput(prior_logits=logits, value=value, embedding=states)
        if c.policy in ("gumbel", "muzero"):
            if c.policy == "gumbel":
                policy_fn = mctx.gumbel_muzero_policy
                extra = dict(
                    max_num_considered_actions=c.max_num_considered_actions,
                    gumbel_scale=c.gumbel_scale,
                )
            else:
                policy_fn = mctx.muzero_policy
                extra = dict(
                    dirichlet_fraction=c.dirichlet_fraction,
                    dirichlet_alpha=c.dirichlet_alpha,
                    pb_c_init=c.pb_c_init,
                    pb_c_base=c.pb_c_base,
                    temperature=c.temperature,
                )
            out = policy_fn(
                params,
                search_key,
                root,
                recurrent_fn,
                c.num_simulations,
                invalid_actions=invalid,
                max_depth=c.max_depth,
                **extra,
            )
            action, weights, tree = out.action, out.action_weights, out.search_tree
        else:
            select = _ucb1_selection(c.ucb_c)
            tree = mctx.search(
                params,
                search_key,
                root=root,
                recurrent_fn=recurrent_fn,
                root_action_selection_fn=functools.partial(select, depth=0),
                interior_action_selection_fn=select,
                num_simulations=c.num_simulations,
                max_depth=c.max_depth,
                invalid_actions=invalid,
            )
            visits = tree.summary().visit_counts
            if invalid is not None:
                visits = jnp.where(invalid > 0, -1.0, visits)
            action = jnp.argmax(visits, axis=-1).astype(jnp.int32)
            weights = tree.summary().visit_probs
        summary = tree.summary()
        return SearchResult(
            action=action.astype(jnp.int32),
            policy=weights,
            value=summary.value,
            visit_counts=summary.visit_counts,
            q_values=jnp.where(summary.visit_counts > 0, summary.qvalues, 0.0),
        )

    return search
