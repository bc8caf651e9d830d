"""Sutton & Barto (2nd ed.), chapter 8, reproduced: Figures 8.2, 8.4, 8.5 and Example 8.4.

Every curve is one jitted, vmapped call per agent (all seeds at once). Each
figure is drawn for the textbook sequential planning and for the batched
variant (all planning updates of a step computed from the same Q and applied
together), to show both give the chapter's statistics.

    python examples/sutton_barto_ch8.py [--out docs] [--seeds 30] [--quick]

Writes ``fig8_2.png``, ``fig8_4.png``, ``fig8_5.png``, ``example8_4.png`` and
``sutton_barto_ch8.json`` (the numbers behind every curve) into ``--out``.
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
from mbrl_jax.agents import dyna_q  # noqa: E402
from mbrl_jax.agents import prioritized_sweeping as ps  # noqa: E402
from mbrl_jax.core import returns as metrics  # noqa: E402
from mbrl_jax.experiments.compare import optimal_path_length  # noqa: E402

MODES = ("sequential", "batched")


def run_seeds(module, config, env, params, seeds: int, seed: int = 0):
    """One compiled call: ``seeds`` runs of an agent."""
    keys = jax.random.split(jax.random.key(seed), seeds)
    start = time.perf_counter()
    train = mbrl_jax.jit(jax.vmap(module.make_train(config, env, params)))
    out = jax.block_until_ready(train(keys))
    return out, time.perf_counter() - start


def figure_8_2(seeds: int, episodes: int = 50) -> dict:
    env, params = envs.make("DynaMaze")
    result = {"episodes": episodes, "seeds": seeds, "curves": {}}
    for mode in MODES:
        for n in (0, 5, 50):
            config = dyna_q.Config(
                num_steps=15_000,
                planning_steps=n,
                learning_rate=0.1,
                epsilon=0.1,
                discount=0.95,
                max_episodes=episodes,
                planning=mode,
            )
            out, seconds = run_seeds(dyna_q, config, env, params, seeds)
            lengths, valid = jax.vmap(lambda d: metrics.episode_lengths(d, episodes))(
                out.metrics.done
            )
            assert bool(valid.all()), "raise num_steps: a seed did not finish all episodes"
            mean = np.asarray(lengths).mean(0)
            result["curves"][f"{mode}/n={n}"] = {
                "mean_steps_per_episode": mean.round(3).tolist(),
                "seconds": seconds,
            }
            print(
                f"fig 8.2 {mode:>10} n={n:>2}: episode 2 {mean[1]:7.1f}, episodes 41-50 "
                f"{mean[40:].mean():5.1f} steps ({seconds:.1f} s)"
            )
    return result


def plot_8_2(result: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    x = np.arange(2, result["episodes"] + 1)
    colours = {"n=0": "tab:blue", "n=5": "tab:green", "n=50": "tab:red"}
    for key, curve in result["curves"].items():
        mode, n = key.split("/")
        ax.plot(
            x,
            curve["mean_steps_per_episode"][1:],
            ls="-" if mode == "sequential" else "--",
            color=colours[n],
            label=f"{n} ({mode})",
        )
    ax.set_xlabel("episodes")
    ax.set_ylabel("steps per episode")
    ax.set_ylim(0, 800)
    ax.set_title(f"Figure 8.2: Dyna maze, {result['seeds']} seeds")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def changing_maze(name: str, steps: int, change: int, n: int, kappa: float, seeds: int) -> dict:
    env, params = envs.make(name)
    result = {
        "env": name,
        "steps": steps,
        "change_step": change,
        "planning_steps": n,
        "kappa": kappa,
        "seeds": seeds,
        "curves": {},
    }
    for mode in MODES:
        for label, k in (("Dyna-Q", 0.0), ("Dyna-Q+", kappa)):
            config = dyna_q.Config(
                num_steps=steps,
                planning_steps=n,
                learning_rate=1.0,
                epsilon=0.1,
                discount=0.95,
                kappa=k,
                planning=mode,
            )
            out, seconds = run_seeds(dyna_q, config, env, params, seeds)
            cum = np.asarray(metrics.cumulative_reward(out.metrics.reward)).mean(0)
            result["curves"][f"{mode}/{label}"] = {
                "mean_cumulative_reward": cum[9::10].round(3).tolist(),
                "at_change": float(cum[change - 1]),
                "final": float(cum[-1]),
                "after_change": float(cum[-1] - cum[change - 1]),
                "seconds": seconds,
            }
            print(
                f"{name:>13} {mode:>10} {label:>7}: cumulative reward {cum[change - 1]:6.1f} "
                f"at the change, {cum[-1]:6.1f} at the end ({seconds:.1f} s)"
            )
    return result


def plot_changing(result: dict, path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    x = np.arange(10, result["steps"] + 1, 10)
    colours = {"Dyna-Q": "tab:blue", "Dyna-Q+": "tab:red"}
    for key, curve in result["curves"].items():
        mode, label = key.split("/")
        ax.plot(
            x,
            curve["mean_cumulative_reward"],
            ls="-" if mode == "sequential" else "--",
            color=colours[label],
            label=f"{label} ({mode})",
        )
    ax.axvline(result["change_step"], color="k", lw=0.8, ls=":")
    ax.set_xlabel("time steps")
    ax.set_ylabel("cumulative reward")
    ax.set_title(f"{title}: {result['env']}, {result['seeds']} seeds")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def example_8_4(factors, seeds: int, tolerance: float = 1.2) -> dict:
    """Updates until the greedy path is within ``tolerance`` of the shortest one."""
    from mbrl_jax.envs import layouts

    result = {"factors": list(factors), "seeds": seeds, "tolerance": tolerance, "rows": []}
    for k in factors:
        params = envs.make_maze_params(envs.scale_layout(layouts.DYNA_MAZE, k))
        env = envs.GridMaze(f"DynaMaze-x{k}", params)
        shortest = optimal_path_length(env, params)
        row = {"factor": k, "states": int(params.num_states), "shortest_path": shortest}
        interval = 10 * k
        steps = interval * 300 * k
        for label, module, extra in (
            ("Dyna-Q", dyna_q, {}),
            ("prioritized sweeping", ps, {"theta": 1e-4}),
        ):
            config = module.Config(
                num_steps=steps,
                planning_steps=5,
                learning_rate=0.5,
                epsilon=0.1,
                discount=0.95,
                greedy_eval_interval=interval,
                **extra,
            )
            out, seconds = run_seeds(module, config, env, params, seeds)
            updates = np.asarray(
                metrics.updates_until_path_within(
                    out.greedy_path_length, out.metrics.q_updates, interval, tolerance * shortest
                )
            )
            updates = np.where(np.isfinite(updates), updates, np.nan)
            row[label] = {
                "median_updates": float(np.nanmedian(updates))
                if np.isfinite(updates).any()
                else None,
                "seeds_solved": int(np.isfinite(updates).sum()),
                "updates_per_seed": [None if np.isnan(u) else int(u) for u in updates],
                "seconds": seconds,
            }
            print(
                f"example 8.4 x{k} ({row['states']:>5} states) {label:>20}: median "
                f"{row[label]['median_updates']} updates, "
                f"{row[label]['seeds_solved']}/{seeds} solved ({seconds:.1f} s)"
            )
        result["rows"].append(row)
    return result


def plot_8_4(result: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    states = [row["states"] for row in result["rows"]]
    for label in ("Dyna-Q", "prioritized sweeping"):
        ax.plot(states, [row[label]["median_updates"] for row in result["rows"]], "o-", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("gridworld size (states)")
    ax.set_ylabel("updates until optimal solution")
    ax.set_title(
        f"Example 8.4: median over {result['seeds']} seeds "
        f"(within {result['tolerance']}x shortest path)"
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs")
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="fewer seeds and maze sizes")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = 5 if args.quick else args.seeds
    factors = (1, 2) if args.quick else (1, 2, 3, 4, 5)

    results = {"figure_8_2": figure_8_2(seeds)}
    plot_8_2(results["figure_8_2"], out / "fig8_2.png")
    results["figure_8_4"] = changing_maze("BlockingMaze", 3000, 1000, 10, 1e-4, seeds)
    plot_changing(results["figure_8_4"], out / "fig8_4.png", "Figure 8.4")
    results["figure_8_5"] = changing_maze("ShortcutMaze", 6000, 3000, 50, 1e-3, seeds)
    plot_changing(results["figure_8_5"], out / "fig8_5.png", "Figure 8.5")
    results["example_8_4"] = example_8_4(factors, min(seeds, 10))
    plot_8_4(results["example_8_4"], out / "example8_4.png")
    (out / "sutton_barto_ch8.json").write_text(json.dumps(results, indent=1))
    print(f"wrote figures and sutton_barto_ch8.json to {out}/")


if __name__ == "__main__":
    main()
