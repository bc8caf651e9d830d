"""Gradient MPC against iCEM, side by side, planning in the same learned ensemble.

For each environment, PETS (iCEM) learns an ensemble for a few trials; then
each planner -- iCEM (PETS's default), gradient MPC (Adam through the
ensemble) and the CEM-then-gradient hybrid -- acts with that same fitted
ensemble for ``--episodes`` real episodes from the same start states (vmapped).
Reported per planner: the mean real return, the model rollouts per action
(forward passes; a backward pass costs about two more), seconds per action
and compile time. Writes ``docs/gradient_mpc.json``.

    python examples/gradient_mpc.py [--out docs] [--episodes 4]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from mbrl_jax import envs
from mbrl_jax.agents import pets

SETTINGS = {"ContinuousCartPole": {"trials": 3}, "Pendulum-v1": {"trials": 6}}


def rollouts_per_action(planner) -> int:
    if hasattr(planner, "rollouts_per_action"):
        return planner.rollouts_per_action()
    return planner.population * planner.num_iterations * planner.num_particles


def episodes_with(config, env, params, ens_state, key, num_episodes: int):
    """Real episodes acting with ``config.planner`` in the fitted ensemble ``ens_state``."""
    _, planner, _ = pets.make_mpc(config, env, params)
    steps = config.trial_length

    def episode(key):
        reset_key, loop_key = jax.random.split(key)
        obs, env_state = env.reset(reset_key, params)

        def body(carry, step_key):
            obs, env_state, plan_state, alive, total = carry
            plan_key, env_key = jax.random.split(step_key)
            result, plan_state = planner.plan(ens_state, plan_key, obs, plan_state)
            obs, env_state, reward, term, trunc, _ = env.step(
                env_key, env_state, result.action, params
            )
            total = total + alive * reward
            alive = alive * (1.0 - (term | trunc).astype(jnp.float32))
            return (obs, env_state, plan_state, alive, total), None

        init = (obs, env_state, planner.init(), jnp.float32(1.0), jnp.float32(0.0))
        carry, _ = jax.lax.scan(body, init, jax.random.split(loop_key, steps))
        return carry[-1]

    run = jax.jit(jax.vmap(episode))
    keys = jax.random.split(key, num_episodes)
    start = time.perf_counter()
    compiled = run.lower(keys).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    returns = np.asarray(jax.block_until_ready(compiled(keys)))
    run_s = time.perf_counter() - start
    return returns, compile_s, run_s


def compare_env(env_name: str, num_episodes: int, seed: int) -> dict:
    env, params = envs.make(env_name)
    base = dataclasses.replace(pets.preset(env_name), num_trials=SETTINGS[env_name]["trials"])
    start = time.perf_counter()
    learned = jax.jit(pets.make_train(base, env, params))(jax.random.key(seed))
    learn_s = time.perf_counter() - start
    row = {
        "pets_trials": base.num_trials,
        "pets_trial_returns": np.asarray(learned.trial_returns).round(1).tolist(),
        "pets_seconds": round(learn_s, 1),
        "episodes": num_episodes,
        "planners": {},
    }
    eval_key = jax.random.key(seed + 1000)  # the same start states for every planner
    for name in pets.PLANNER_CHOICES:
        config = pets.preset(env_name, name)
        config = dataclasses.replace(config, num_trials=base.num_trials)
        returns, compile_s, run_s = episodes_with(
            config, env, params, learned.ensemble, eval_key, num_episodes
        )
        steps = num_episodes * config.trial_length
        row["planners"][name] = {
            "method": config.planner.method,
            "returns": returns.round(1).tolist(),
            "mean_return": round(float(returns.mean()), 1),
            "rollouts_per_action": rollouts_per_action(config.planner),
            "horizon": config.planner.horizon,
            "ms_per_action": round(1000 * run_s / steps, 2),
            "compile_s": round(compile_s, 1),
        }
        print(env_name, name, row["planners"][name], flush=True)
    shoot = row["planners"]["shooting"]
    for name in ("gradient", "cem_gradient"):
        other = row["planners"][name]
        other["return_vs_shooting"] = round(
            (other["mean_return"] - shoot["mean_return"]) / abs(shoot["mean_return"]), 3
        )
        other["rollouts_vs_shooting"] = round(
            other["rollouts_per_action"] / shoot["rollouts_per_action"], 3
        )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs")
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--envs", default=",".join(SETTINGS))
    args = parser.parse_args()
    result = {
        "device": str(jax.devices()[0]),
        "envs": {
            name: compare_env(name, args.episodes, args.seed) for name in args.envs.split(",")
        },
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gradient_mpc.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out / 'gradient_mpc.json'}")


if __name__ == "__main__":
    main()
