"""Tree search with known and learned models: MCTS on DynaMaze, AlphaZero and MuZero on CartPole.

Writes ``docs/search_agents.json`` (every figure below) and
``docs/search_agents.png`` (AlphaZero and MuZero learning curves, mean over
seeds with the range):

* classic MCTS (UCB1, batched random rollouts, true model) on ``DynaMaze``:
  steps per episode at 200 and 2,000 simulations per move (shortest path 14);
* AlphaZero (environment as model) and MuZero (learned model) on
  ``CartPole-v1``: mean return of the training episodes per iteration, and the
  final evaluation (search without root noise, one episode per environment).

    python examples/search_agents.py [--seeds 5] [--out docs]
"""

from __future__ import annotations

import argparse
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
from mbrl_jax.agents import alphazero, mcts, muzero  # noqa: E402
from mbrl_jax.planners.search import SearchConfig  # noqa: E402


def run_mcts(seeds: int, simulations: int, episodes: int) -> dict:
    env, params = envs.make("DynaMaze")
    default = mcts.Config()
    config = mcts.Config(
        num_steps=episodes * 200,
        max_episodes=episodes,
        search=SearchConfig(
            num_simulations=simulations,
            policy="ucb1",
            discount=default.search.discount,
            ucb_c=default.search.ucb_c,
        ),
    )
    start = time.perf_counter()
    out = mbrl_jax.jit(jax.vmap(mcts.make_train(config, env, params)))(
        jax.random.split(jax.random.key(0), seeds)
    )
    done = np.asarray(out.metrics.done)
    seconds = time.perf_counter() - start
    lengths = [np.diff(np.concatenate([[-1], np.flatnonzero(d)])).tolist() for d in done]
    flat = [x for row in lengths for x in row]
    return {
        "simulations": simulations,
        "episode_lengths": lengths,
        "mean_steps_per_episode": float(np.mean(flat)),
        "wall_s": seconds,
    }


def run_learner(module, seeds: int) -> dict:
    env, params = envs.make("CartPole-v1")
    config = module.Config()
    start = time.perf_counter()
    out = mbrl_jax.jit(jax.vmap(module.make_train(config, env, params)))(
        jax.random.split(jax.random.key(0), seeds)
    )
    jax.block_until_ready(out)
    seconds = time.perf_counter() - start
    steps_per_iteration = config.num_envs * config.unroll_length
    return {
        "env_steps": config.num_iterations * steps_per_iteration,
        "steps_per_iteration": steps_per_iteration,
        "mean_return": np.asarray(out.mean_return).round(2).tolist(),
        "eval_return_per_seed": np.asarray(out.eval_return).mean(1).round(2).tolist(),
        "eval_return_mean": float(np.asarray(out.eval_return).mean()),
        "wall_s_all_seeds_including_compile": seconds,
    }


def plot(results: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in ("alphazero", "muzero"):
        r = results[name]
        curve = np.asarray(r["mean_return"], dtype=float)  # [seeds, iterations]
        # Iterations where no episode ended carry NaN; hold the last value.
        for row in curve:
            for i in range(1, len(row)):
                if np.isnan(row[i]):
                    row[i] = row[i - 1]
        x = (np.arange(curve.shape[1]) + 1) * r["steps_per_iteration"]
        mean = np.nanmean(curve, 0)
        (line,) = ax.plot(x, mean, label=f"{name} (eval {r['eval_return_mean']:.0f})")
        ax.fill_between(
            x, np.nanmin(curve, 0), np.nanmax(curve, 0), alpha=0.2, color=line.get_color()
        )
    ax.axhline(475, color="gray", ls="--", lw=1)
    ax.set_xlabel("environment steps (all parallel environments)")
    ax.set_ylabel("mean return of finished episodes")
    ax.set_title("CartPole-v1")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default="docs")
    parser.add_argument("--skip-mcts-2000", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"seeds": args.seeds}
    for name, module in (("alphazero", alphazero), ("muzero", muzero)):
        results[name] = run_learner(module, args.seeds)
        print(name, results[name]["eval_return_per_seed"], flush=True)
    results["mcts_dyna_maze"] = [run_mcts(args.seeds, 200, 3)]
    if not args.skip_mcts_2000:
        results["mcts_dyna_maze"].append(run_mcts(args.seeds, 2000, 2))
    for r in results["mcts_dyna_maze"]:
        print("mcts", r["simulations"], r["mean_steps_per_episode"], flush=True)
    (out / "search_agents.json").write_text(json.dumps(results, indent=1) + "\n")
    plot(results, out / "search_agents.png")


if __name__ == "__main__":
    main()
