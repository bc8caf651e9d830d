"""PETS learning curves on the continuous cart-pole, CartPole-v1 and Pendulum-v1.

Runs ``pets.preset(env)`` (the settings ``mbrl-jax compare --agents pets``
uses; 10 trials on the continuous cart-pole) for several seeds in one
compiled call per environment and writes

* ``docs/pets.json``: per environment, every seed's return per trial, the mean
  per trial, the first trial whose mean reaches the target, and the wall-clock
  time (compile included);
* ``docs/pets.png``: return per trial, mean over seeds with the range, and the
  target as a dashed line.

Trial 1 is random actions; every later trial first fits the ensemble on all
data so far, then runs one episode of MPC.

    python examples/pets.py [--seeds 5] [--envs ContinuousCartPole CartPole-v1 Pendulum-v1]

With ``--envs`` naming a subset, the other environments' entries already in
the JSON are kept.
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
from mbrl_jax.agents import pets  # noqa: E402

#: Mean return each environment should reach, and within how many trials.
TARGETS = {
    "ContinuousCartPole": (190.0, 2),
    "CartPole-v1": (475.0, 10),
    "Pendulum-v1": (-250.0, 15),
}


#: Trials to run where the preset's are too few to show a curve.
TRIALS = {"ContinuousCartPole": 10}


def run(env_name: str, seeds: int) -> dict:
    env, params = envs.make(env_name)
    config = pets.preset(env_name)
    config = dataclasses.replace(config, num_trials=TRIALS.get(env_name, config.num_trials))
    start = time.perf_counter()
    out = mbrl_jax.jit(jax.vmap(pets.make_train(config, env, params)))(
        jax.random.split(jax.random.key(0), seeds)
    )
    returns = np.asarray(jax.block_until_ready(out.trial_returns), dtype=np.float64)
    seconds = time.perf_counter() - start
    mean = returns.mean(0)
    target, within = TARGETS[env_name]
    reached = np.flatnonzero(mean >= target)
    return {
        "trials": config.num_trials,
        "trial_length": config.trial_length,
        "planner": config.planner.method,
        "horizon": config.planner.horizon,
        "population": config.planner.population,
        "returns": returns.round(1).tolist(),
        "mean_per_trial": mean.round(1).tolist(),
        "target": target,
        "target_within_trials": within,
        "first_trial_mean_reaches_target": int(reached[0]) + 1 if len(reached) else None,
        "wall_s_all_seeds_including_compile": round(seconds, 1),
    }


def plot(results: dict, path: Path) -> None:
    names = [n for n in TARGETS if n in results["envs"]]
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        r = results["envs"][name]
        returns = np.asarray(r["returns"])
        x = np.arange(1, returns.shape[1] + 1)
        ax.plot(x, returns.mean(0), marker="o", label=f"PETS, {returns.shape[0]} seeds")
        ax.fill_between(x, returns.min(0), returns.max(0), alpha=0.2)
        ax.axhline(r["target"], color="gray", ls="--", lw=1, label=f"target {r['target']:g}")
        ax.set_title(f"{name} ({r['planner']}, horizon {r['horizon']})")
        ax.set_xlabel("trial (1 = random actions)")
        ax.set_ylabel("return")
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--envs", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--out", default="docs")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "pets.json"
    results = json.loads(path.read_text()) if path.exists() else {"envs": {}}
    results["seeds"] = args.seeds
    for name in args.envs:
        results["envs"][name] = run(name, args.seeds)
        r = results["envs"][name]
        print(name, r["mean_per_trial"], f"{r['wall_s_all_seeds_including_compile']}s", flush=True)
        path.write_text(json.dumps(results, indent=1) + "\n")
    plot(results, out / "pets.png")


if __name__ == "__main__":
    main()
