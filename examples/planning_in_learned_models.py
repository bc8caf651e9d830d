"""One model contract, any planner: pairings across families, measured in the real environment.

* classic MCTS (UCB1, random-rollout leaves) planning in the **learned neural
  ensemble** on ``CartPole-v1`` (fitted on 2,000 random steps; known reward
  and termination), acting in the real environment;
* CEM over per-step action distributions planning in a **count model** of
  ``DynaMaze`` learned from random steps, acting in the real maze;
* Dyna-Q planning through the **count model** instead of its last-seen model,
  on a slippery ``DynaMaze``.

Writes ``docs/planning_in_learned_models.json``.

    python examples/planning_in_learned_models.py [--out docs]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import mbrl_jax
from mbrl_jax import envs, models
from mbrl_jax.agents import dyna_q
from mbrl_jax.core import buffer_add, buffer_init
from mbrl_jax.experiments.collect import random_transitions
from mbrl_jax.experiments.compare import optimal_path_length
from mbrl_jax.planners.search import SearchConfig, make_search, rollout_evaluator
from mbrl_jax.planners.shooting import ActionSpec, MPCConfig, make_planner


def mcts_in_learned_ensemble(episodes: int) -> dict:
    env, params = envs.make("CartPole-v1")
    start = time.perf_counter()
    data = random_transitions(jax.random.key(0), env, params, 2000)
    buffer = buffer_add(buffer_init(jax.tree.map(lambda x: x[0], data), 2000), data)
    ensemble = models.Ensemble(models.EnsembleConfig(num_layers=3).for_env(env, params))
    task = envs.task_functions(env)
    model = models.with_task(
        models.ensemble_model(ensemble, "ts1", num_epochs=50), task.reward_fn, task.termination_fn
    )
    model_params = mbrl_jax.jit(model.update)(
        model.init(jax.random.key(1)), jax.random.key(2), buffer
    )
    evaluate = rollout_evaluator(model, num_actions=2, num_rollouts=8, depth=20)
    search = make_search(SearchConfig(num_simulations=32, policy="ucb1"), model, evaluate, 2)

    def episode(key):
        obs, state = env.reset(key, params)

        def body(carry, k):
            obs, state, alive, total = carry
            action = search(model_params, model_params, k, obs[None]).action[0]
            obs, state, reward, term, trunc, _ = env.step(k, state, action, params)
            return (obs, state, alive * (1 - (term | trunc)), total + alive * reward), None

        init = (obs, state, jnp.float32(1), jnp.float32(0))
        return jax.lax.scan(body, init, jax.random.split(key, 500))[0][3]

    keys = jax.random.split(jax.random.key(3), episodes)
    returns = np.asarray(jax.block_until_ready(mbrl_jax.jit(jax.vmap(episode))(keys)))
    wall = time.perf_counter() - start

    def random_episode(key):
        obs, state = env.reset(key, params)

        def body(carry, k):
            state, alive, total = carry
            action = jax.random.randint(k, (), 0, 2)
            _, state, reward, term, trunc, _ = env.step(k, state, action, params)
            return (state, alive * (1 - (term | trunc)), total + alive * reward), None

        init = (state, jnp.float32(1), jnp.float32(0))
        return jax.lax.scan(body, init, jax.random.split(key, 500))[0][2]

    random_returns = jax.jit(jax.vmap(random_episode))(jax.random.split(jax.random.key(4), 100))
    return {
        "pairing": "MCTS (UCB1, 32 simulations, 8 x 20-step rollouts per leaf) x neural ensemble",
        "env": "CartPole-v1",
        "random_steps_for_the_model": 2000,
        "episode_returns": returns.tolist(),
        "random_policy_return_mean_100_episodes": float(random_returns.mean()),
        "wall_s_including_compile": wall,
    }


def cem_in_count_model(episodes: int) -> dict:
    env, params = envs.make("DynaMaze")
    start = time.perf_counter()
    num_states = int(params.num_states)
    model = models.count_model(num_states, 4)
    data = random_transitions(jax.random.key(0), env, params, 5000)
    model_params = model.update(model.init(jax.random.key(1)), jax.random.key(2), data)
    planner = make_planner(
        MPCConfig(
            method="cem",
            horizon=25,
            population=200,
            num_elites=20,
            num_particles=1,
            discount=0.95,
        ),
        model,
        ActionSpec(num_actions=4),
    )

    def episode(key):
        obs, state = env.reset(key, params)

        def body(carry, k):
            obs, state, plan_state, alive, steps = carry
            result, plan_state = planner.plan(model_params, k, obs, plan_state)
            obs, state, _, term, trunc, _ = env.step(k, state, result.action, params)
            return (obs, state, plan_state, alive * (1 - (term | trunc)), steps + alive), None

        init = (obs, state, planner.init(), jnp.float32(1), jnp.float32(0))
        (_, _, _, alive, steps), _ = jax.lax.scan(body, init, jax.random.split(key, 100))
        return jnp.where(alive > 0, -1.0, steps)

    steps = mbrl_jax.jit(jax.vmap(episode))(jax.random.split(jax.random.key(3), episodes))
    steps = np.asarray(jax.block_until_ready(steps))
    return {
        "pairing": "CEM (per-step categoricals, population 200, horizon 25) x count model",
        "env": "DynaMaze",
        "random_steps_for_the_model": 5000,
        "steps_to_goal": steps.tolist(),
        "shortest_path": optimal_path_length(env, params),
        "wall_s_including_compile": time.perf_counter() - start,
    }


def dyna_with_count_model(seeds: int, slip_prob: float = 0.25) -> dict:
    # On a slippery maze the last-seen model keeps whichever outcome came
    # last; the count model keeps the distribution.
    env, params = envs.make("DynaMaze", slip_prob=slip_prob)
    num_states = int(params.num_states)
    config = dyna_q.Config(num_steps=3000, planning_steps=50)
    out = {}
    for name, model in (
        ("deterministic", None),
        ("count", models.count_model(num_states, 4)),
    ):
        train = mbrl_jax.jit(jax.vmap(dyna_q.make_train(config, env, params, model=model)))
        result = train(jax.random.split(jax.random.key(0), seeds))
        done = np.asarray(result.metrics.done)
        episodes = done.sum(1)
        out[name] = {
            "episodes_in_3000_steps_mean": float(episodes.mean()),
            "cumulative_reward_mean": float(np.asarray(result.metrics.reward).sum(1).mean()),
        }
    return {
        "pairing": "Dyna-Q (n = 50) x count model vs last-seen model",
        "env": f"DynaMaze, slip_prob {slip_prob}",
        "seeds": seeds,
        "per_model": out,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs")
    args = parser.parse_args()
    results = {
        "mcts_x_ensemble": mcts_in_learned_ensemble(4),
        "cem_x_count_model": cem_in_count_model(8),
        "dyna_q_x_count_model": dyna_with_count_model(10),
    }
    print(json.dumps(results, indent=1))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "planning_in_learned_models.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
