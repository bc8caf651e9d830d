"""Policy optimisation through a learned model on Pendulum-v1: analytic gradients vs CMA-ES.

Runs ``policy_through_model.Config()`` (10 trials of 200 steps, the first
random) with ``optimizer="gradient"`` and with ``optimizer="cma_es"`` for
several seeds, one compiled call per mode, and writes

* ``docs/policy_through_model.json``: per mode, every seed's return per trial,
  the mean per trial, the model's predicted return per trial, compile and run
  wall-clock times;
* ``docs/policy_through_model.png``: return per trial, mean over seeds with
  the range, and the target (-200 within 10 episodes) as a dashed line.

CMA-ES evaluates ``population`` candidates per generation with fewer
particles each (``--es-particles``), so one generation costs about as much
model computation as one gradient step.

    python examples/policy_through_model.py [--seeds 5] [--modes gradient cma_es]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import jax
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import mbrl_jax  # noqa: E402
from mbrl_jax import envs  # noqa: E402
from mbrl_jax.agents import policy_through_model as ptm  # noqa: E402

TARGET = -200.0


def mode_config(mode: str, es_population: int, es_particles: int) -> ptm.Config:
    config = dataclasses.replace(ptm.Config(), optimizer=mode)
    if mode != "gradient":
        config = dataclasses.replace(config, population=es_population, num_particles=es_particles)
    return config


def run(mode: str, seeds: int, es_population: int, es_particles: int) -> dict:
    env, params = envs.make("Pendulum-v1")
    config = mode_config(mode, es_population, es_particles)
    keys = jax.random.split(jax.random.key(0), seeds)
    start = time.perf_counter()
    compiled = mbrl_jax.jit(jax.vmap(ptm.make_train(config, env, params))).lower(keys).compile()
    compile_s = time.perf_counter() - start
    out = jax.block_until_ready(compiled(keys))
    run_s = time.perf_counter() - start - compile_s
    returns = np.asarray(out.trial_returns, np.float64)
    mean = returns.mean(0)
    reached = np.flatnonzero(mean >= TARGET)
    return {
        "optimizer": mode,
        "trials": config.num_trials,
        "trial_length": config.trial_length,
        "real_steps_per_seed": config.num_trials * config.trial_length,
        "horizon": config.horizon,
        "policy_updates": config.policy_updates,
        "num_particles": config.num_particles,
        "population": config.population if mode != "gradient" else None,
        "returns": returns.round(1).tolist(),
        "mean_per_trial": mean.round(1).tolist(),
        "predicted_return": np.asarray(out.predicted_return).round(1).tolist(),
        "final_policy_loss": np.asarray(out.policy_loss[:, :, -1]).round(1).tolist(),
        "target": TARGET,
        "first_trial_mean_reaches_target": int(reached[0]) + 1 if len(reached) else None,
        "compile_s": round(compile_s, 1),
        "run_s_all_seeds": round(run_s, 1),
    }


def plot(results: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for mode, r in results.items():
        returns = np.asarray(r["returns"])
        trials = np.arange(1, returns.shape[1] + 1)
        ax.plot(trials, returns.mean(0), marker="o", label=f"{mode} (mean of {len(returns)})")
        ax.fill_between(trials, returns.min(0), returns.max(0), alpha=0.2)
    ax.axhline(TARGET, ls="--", color="gray", label=f"target {TARGET:g}")
    ax.set_xlabel("trial (200 real steps each; trial 1 random)")
    ax.set_ylabel("episode return")
    ax.set_title("Pendulum-v1: policy optimisation through a learned ensemble")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--modes", nargs="+", default=["gradient", "cma_es"])
    parser.add_argument("--es-population", type=int, default=16)
    parser.add_argument("--es-particles", type=int, default=10)
    parser.add_argument("--out", default="docs")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "policy_through_model.json"
    results = json.loads(json_path.read_text())["modes"] if json_path.exists() else {}
    for mode in args.modes:
        results[mode] = run(mode, args.seeds, args.es_population, args.es_particles)
        print(mode, results[mode]["mean_per_trial"], flush=True)
        json_path.write_text(
            json.dumps({"env": "Pendulum-v1", "seeds": args.seeds, "modes": results}, indent=1)
        )
    plot(results, out / "policy_through_model.png")


if __name__ == "__main__":
    main()
