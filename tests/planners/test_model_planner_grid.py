"""The promise of the model contract: every model plans with every planner that can use it.

Each model factory below builds a :class:`~mbrl_jax.core.types.Model` with
fitted (or fresh) params, a start state and an action space; each planner
runs one jitted plan with it and must return finite, correctly shaped
output. A new model or planner joins the grid with one entry.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import pytest

from mbrl_jax import envs, models
from mbrl_jax.core.replay import buffer_add, buffer_init
from mbrl_jax.core.types import Model, Transition
from mbrl_jax.experiments.collect import random_transitions
from mbrl_jax.planners.dp import value_iteration
from mbrl_jax.planners.dyna import dyna_planning, visited_init, visited_update
from mbrl_jax.planners.prioritized_sweeping import predict_all_pairs, push, sweep
from mbrl_jax.planners.search import SearchConfig, make_search, rollout_evaluator
from mbrl_jax.planners.shooting import ActionSpec, MPCConfig, make_planner

S, A = 25, 4  # GridWorld-5x5


class Case(NamedTuple):
    model: Model
    params: Any
    start: Any  # one state
    num_actions: int
    tabular: bool  # int32 states in [0, S): Dyna and prioritized sweeping apply
    to_mdp: Any = None  # params -> TabularMDP, for models that export one: DP applies


def _maze():
    env, params = envs.make("GridWorld-5x5")
    data = random_transitions(jax.random.key(1), env, params, 300)
    return env, params, data


def _tabular_case(model: Model, to_mdp) -> Case:
    _, _, data = _maze()
    params = model.init(jax.random.key(0))
    params = jax.jit(model.update)(params, jax.random.key(2), data)
    return Case(model, params, jnp.int32(0), A, True, to_mdp)


def _ensemble(obs_dim: int, num_actions: int):
    config = models.EnsembleConfig(
        obs_dim=obs_dim,
        action_dim=num_actions,
        discrete_actions=True,
        ensemble_size=3,
        num_elites=3,
        hidden_size=16,
        num_layers=2,
        learn_reward=True,
        learn_termination=True,
    )
    return models.Ensemble(config)


def _fit(model: Model, data: Transition):
    buffer = buffer_add(buffer_init(jax.tree.map(lambda x: x[0], data), 512), data)
    return jax.jit(model.update)(model.init(jax.random.key(0)), jax.random.key(3), buffer)


def onehot_ensemble_case() -> Case:
    """The neural ensemble over one-hot maze states, as a tabular model."""
    model = models.indexed_states(models.ensemble_model(_ensemble(S, A), "ts1", 3), S)
    _, _, data = _maze()
    return Case(model, _fit(model, data), jnp.int32(0), A, True)


def cartpole_ensemble_case() -> Case:
    """The neural ensemble on CartPole-v1 observations (discrete actions)."""
    env, params = envs.make("CartPole-v1")
    data = random_transitions(jax.random.key(1), env, params, 300)
    model = models.ensemble_model(_ensemble(4, 2), "tsinf", 3)
    return Case(model, _fit(model, data), data.state[0], 2, False)


def true_env_case() -> Case:
    env, params = envs.make("CartPole-v1")
    _, state = env.reset(jax.random.key(0), params)
    return Case(models.env_model(env, params), None, state, 2, False)


def muzero_case() -> Case:
    net = models.MuZeroNet(num_actions=2, latent_size=8, hidden=(16,))
    model = models.muzero_model(net, (4,))
    params = model.init(jax.random.key(0))
    latent = net.apply(params, jnp.zeros((1, 4)), method=models.MuZeroNet.represent)[0]
    return Case(model, params, latent, 2, False)


MODELS = {
    "count": lambda: _tabular_case(models.count_model(S, A), models.count_model_mdp),
    "deterministic": lambda: _tabular_case(
        models.deterministic_model(S, A), models.deterministic_model_mdp
    ),
    "tabular_ensemble": lambda: _tabular_case(
        models.tabular_ensemble_model(3, S, A),
        lambda p: jax.tree.map(lambda x: x[0], models.ensemble_mdps(p)),  # member 0
    ),
    "onehot_ensemble": onehot_ensemble_case,
    "cartpole_ensemble": cartpole_ensemble_case,
    "true_env": true_env_case,
    "muzero_latent": muzero_case,
}


def _finite(tree) -> bool:
    return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(tree) if x.dtype.kind == "f")


# ---------------------------------------------------------------------------- planners
def plan_dyna(case: Case):
    memory = visited_init(S, case.num_actions)
    for s, a in [(0, 1), (1, 3), (5, 1), (6, 2)]:
        memory = visited_update(memory, jnp.int32(s), jnp.int32(a))

    def plan(params, seed):
        q = jnp.zeros((S, case.num_actions))
        return dyna_planning(q, case.model, params, memory, seed, 20, 0.5, 0.9)

    q = jax.jit(plan)(case.params, jnp.uint32(7))
    assert q.shape == (S, case.num_actions) and _finite(q)
    assert float(jnp.abs(q).sum()) > 0.0  # the model's rewards reached Q


def plan_prioritized_sweeping(case: Case):
    visited = jnp.zeros((S, case.num_actions), bool).at[:6].set(True)

    def plan(params, key):
        outcomes = predict_all_pairs(case.model, params, key, S, case.num_actions)
        q = jnp.zeros((S, case.num_actions))
        priority = push(jnp.zeros_like(q), 1, 1, jnp.float32(1.0), 0.0)
        return sweep(q, outcomes, visited, priority, 10, 0.5, 0.9, 1e-4)

    q, priority, updates = jax.jit(plan)(case.params, jax.random.key(0))
    assert q.shape == (S, case.num_actions) and _finite(q) and int(updates) >= 1


def plan_dp(case: Case):
    mdp = case.to_mdp(case.params)
    result = jax.jit(lambda m: value_iteration(m, 0.9))(mdp)
    assert result.values.shape == (S,) and _finite(result.values)


def plan_shooting(case: Case):
    config = MPCConfig(
        method="cem", horizon=4, population=8, num_elites=2, num_iterations=2, num_particles=3
    )
    planner = make_planner(config, case.model, ActionSpec(num_actions=case.num_actions))
    result, state = jax.jit(planner.plan)(
        case.params, jax.random.key(0), case.start, planner.init()
    )
    assert result.action.shape == () and 0 <= int(result.action) < case.num_actions
    assert result.sequence.shape == (4,) and _finite(result.predicted_return)
    assert state.mean.shape == (4, case.num_actions)


def plan_search(case: Case):
    evaluate = rollout_evaluator(case.model, case.num_actions, num_rollouts=2, depth=3)
    search = make_search(
        SearchConfig(num_simulations=6, policy="ucb1"), case.model, evaluate, case.num_actions
    )
    roots = jax.tree.map(lambda x: jnp.stack([x, x]), case.start)
    result = jax.jit(search)(case.params, case.params, jax.random.key(0), roots)
    assert result.action.shape == (2,) and result.policy.shape == (2, case.num_actions)
    assert _finite(result.value) and _finite(result.q_values)


PLANNERS = {
    "dyna": plan_dyna,
    "prioritized_sweeping": plan_prioritized_sweeping,
    "dp": plan_dp,
    "shooting": plan_shooting,
    "search": plan_search,
}

# What a planner needs of a case; shooting and search need nothing beyond the contract.
NEEDS = {
    "dyna": lambda case: case.tabular,
    "prioritized_sweeping": lambda case: case.tabular,
    "dp": lambda case: case.to_mdp is not None,
}
TABULAR_MODELS = {"count", "deterministic", "tabular_ensemble", "onehot_ensemble"}
MDP_MODELS = {"count", "deterministic", "tabular_ensemble"}


def _applicable(model_name: str, planner_name: str) -> bool:
    # Decided from names so the grid is known at collection time; a test below
    # checks that these sets agree with the built cases.
    if planner_name in ("dyna", "prioritized_sweeping"):
        return model_name in TABULAR_MODELS
    if planner_name == "dp":
        return model_name in MDP_MODELS
    return True


GRID = [(m, p) for m in MODELS for p in PLANNERS if _applicable(m, p)]


@pytest.fixture(scope="module")
def cases():
    built = {}

    def get(name):
        if name not in built:
            built[name] = MODELS[name]()
        return built[name]

    return get


@pytest.mark.parametrize("model_name,planner_name", GRID)
def test_model_plans_with_planner(cases, model_name, planner_name):
    case = cases(model_name)
    assert NEEDS.get(planner_name, lambda c: True)(case)
    PLANNERS[planner_name](case)


def test_the_grid_covers_every_model_and_planner():
    assert {m for m, _ in GRID} == set(MODELS)
    assert {p for _, p in GRID} == set(PLANNERS)
    # Shooting and search take every model; that is the contract's point.
    for planner in ("shooting", "search"):
        assert {m for m, p in GRID if p == planner} == set(MODELS)
    assert len(GRID) == 7 * 2 + 4 * 2 + 3
