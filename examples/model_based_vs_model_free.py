"""Model-based vs model-free at equal real-step accounting: return vs environment
steps and return vs wall-clock, one figure per environment.

* ``Pendulum-v1``: SAC (20,000 steps), MBPO (5,000 steps) and PETS.
* ``CartPole-v1``: DQN (100,000 steps), Dyna-DQN (50,000 steps) and PETS.

SAC, MBPO, DQN and Dyna-DQN run here through :func:`mbrl_jax.experiments.compare.run_comparison`
(the runner of ``mbrl-jax compare``), all seeds vmapped in one compiled
program per agent, cut into chunks; after every chunk each seed's policy is
evaluated greedily in the real environment (5 episodes). The wall-clock of a
point is the compile time plus the run time up to the end of its chunk (the
evaluations' own time left out). PETS's curves are read from
``docs/pets.json`` (``examples/pets.py``): one point per trial (each MPC trial
runs the evaluation policy), with the run's total wall-clock spread evenly
over its trials, since that script records the total only.

"Steps to target" per seed is the first evaluation point whose return reaches
the target (Pendulum-v1: -200, CartPole-v1: 475), and, from the training
episodes, the first step at which the mean of the last 10 finished episodes'
returns reaches it.

Writes ``<out>.json`` (every curve, per seed, and the steps-to-target table)
and ``<out>_<env>.png``. Each agent's run is kept as ``<out>/<env>/<agent>.json``
and reused by a later call unless ``--rerun`` (so one agent can be re-run).

    python examples/model_based_vs_model_free.py [--seeds 5] [--envs Pendulum-v1]
        [--agents sac mbpo] [--quick] [--rerun] [--out docs/model_based_vs_model_free]

MBPO runs one seed at a time (``--mbpo-seeds``, default 5: about 8 minutes a
seed on a 2-core CPU; a saved run of fewer seeds at the same budget is
extended by the missing ones); the others vmap all seeds in one program.

``--quick`` runs a 2-seed smoke version with budgets cut 20-fold (minutes on a
laptop; its numbers say nothing about the agents).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mbrl_jax.experiments import compare  # noqa: E402
from mbrl_jax.experiments.chunked_run import RunOptions  # noqa: E402
from mbrl_jax.experiments.summary import first_reaching  # noqa: E402

#: Per environment: the target return, and (agent, real steps per seed, chunks).
PLAN = {
    "Pendulum-v1": (-200.0, [("sac", 20_000, 40), ("mbpo", 5_000, 20)]),
    "CartPole-v1": (475.0, [("dqn", 100_000, 40), ("dyna_dqn", 50_000, 20)]),
}
#: Run one seed at a time (faster than vmapped seeds on a CPU; see
#: :func:`run_agent_seed_by_seed`), over ``--mbpo-seeds`` seeds.
SEED_BY_SEED = {"mbpo"}
MODEL_BASED = {"mbpo", "dyna_dqn", "pets"}
COLORS = {"sac": "C0", "dqn": "C0", "mbpo": "C3", "dyna_dqn": "C3", "pets": "C2"}
EVAL_EPISODES = 5


def training_steps_to_target(returns, lengths, target, window: int = 10) -> float | None:
    """First step at which the mean of the last ``window`` finished training
    episodes' returns reaches ``target``."""
    ends = np.cumsum(lengths)
    for i in range(window - 1, len(returns)):
        if np.mean(returns[i - window + 1 : i + 1]) >= target:
            return float(ends[i])
    return None


def run_agent(
    env_name: str, agent: str, steps: int, chunks: int, seeds: int, seed: int = 0
) -> dict:
    """One agent over ``seeds`` seeds in one vmapped program: its evaluation
    curve with wall-clock times (of all seeds together)."""
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "log.jsonl"
        options = RunOptions(
            chunks=chunks, eval_episodes=EVAL_EPISODES, eval_every=1, jsonl=str(log_path)
        )
        results = compare.run_comparison(
            env_name, [agent], seeds=seeds, steps=steps, options=options, seed=seed
        )
        records = [json.loads(line) for line in log_path.read_text().splitlines()]
    entry = results["agents"][agent]
    elapsed = {r["steps"]: r["elapsed_s"] for r in records if r.get("event") == "chunk"}
    elapsed[int(entry["planned_real_steps"])] = entry["run_s"]
    wall = [entry["compile_s"] + elapsed.get(s, entry["run_s"]) for s in entry["eval_steps"]]
    return {
        "agent": agent,
        "description": entry["description"],
        "seeds": seeds,
        "steps": steps,
        "eval_steps": entry["eval_steps"],
        "eval_returns": entry["eval_returns"],  # [seeds][points]
        "wall_s": wall,
        "compile_s": entry["compile_s"],
        "run_s": entry["run_s"],
        "episode_returns": entry["episode_returns"],
        "episode_lengths": entry["episode_lengths"],
    }


def run_agent_seed_by_seed(
    env_name: str, agent: str, steps: int, chunks: int, seeds: int, kept: dict | None = None
) -> dict:
    """:func:`run_agent` one seed at a time (base seeds 0, 1, ...), merged: the
    wall-clock of a point is the sum over seeds. On a 2-core CPU MBPO's loop
    steps 8.7 real steps/s for one seed and 6.1 in all for 8 vmapped seeds
    (``benchmarks/results/mbpo_cpu.json``), so one seed at a time is faster.

    ``kept``: a saved merged run of the first ``kept["seeds"]`` seeds at the
    same budget; only the seeds after them are run."""
    runs = [kept] if kept is not None else []
    first = kept["seeds"] if kept is not None else 0
    runs += [run_agent(env_name, agent, steps, chunks, 1, seed=s) for s in range(first, seeds)]
    merged = dict(runs[0], seeds=seeds, seed_by_seed=True)
    merged["wall_s"] = np.sum([r["wall_s"] for r in runs], axis=0).tolist()
    for key in ("compile_s", "run_s"):
        merged[key] = float(sum(r[key] for r in runs))
    for key in ("eval_returns", "episode_returns", "episode_lengths"):
        merged[key] = sum((r[key] for r in runs), [])
    return merged


def pets_curve(env_name: str, pets_json: Path) -> dict | None:
    """PETS's per-trial returns from ``examples/pets.py``'s JSON, as a curve."""
    if not pets_json.exists():
        return None
    saved = json.loads(pets_json.read_text())["envs"].get(env_name)
    if saved is None:
        return None
    trials, length = saved["trials"], saved["trial_length"]
    returns = np.asarray(saved["returns"], np.float64)  # [seeds, trials]
    wall = saved["wall_s_all_seeds_including_compile"]
    return {
        "agent": "pets",
        "description": (
            f"PETS ({saved['planner']}, population {saved['population']}, horizon "
            f"{saved['horizon']}): {trials} trials x {length} steps, trial 1 random"
        ),
        "seeds": int(returns.shape[0]),
        "steps": trials * length,
        "eval_steps": [(t + 1) * length for t in range(trials)],
        "eval_returns": returns.tolist(),
        "wall_s": [wall * (t + 1) / trials for t in range(trials)],
        "compile_s": None,
        "run_s": wall,
        "episode_returns": returns.tolist(),
        "episode_lengths": [[length] * trials for _ in range(returns.shape[0])],
        "source": str(pets_json),
    }


def summarize(curve: dict, target: float) -> dict:
    returns = np.asarray(curve["eval_returns"], np.float64)  # [seeds, points]
    per_seed_eval = [first_reaching(curve["eval_steps"], r.tolist(), target) for r in returns]
    if curve["agent"] == "pets":
        # Each PETS trial is one episode of its evaluation policy (MPC without
        # added noise): its training curve is its evaluation curve.
        per_seed_train = per_seed_eval
    else:
        per_seed_train = [
            training_steps_to_target(np.asarray(r), np.asarray(n), target)
            for r, n in zip(curve["episode_returns"], curve["episode_lengths"], strict=True)
        ]
    reached = [s for s in per_seed_eval if s is not None]
    return {
        "steps": curve["steps"],
        "seeds": curve["seeds"],
        "final_eval_mean": float(returns[:, -1].mean()),
        "best_eval_mean": float(returns.mean(axis=0).max()),
        "steps_to_target_eval": per_seed_eval,
        "steps_to_target_train": per_seed_train,
        "seeds_reaching_target": len(reached),
        "median_steps_to_target": float(np.median(reached)) if reached else None,
        "wall_s_total": curve["wall_s"][-1] if curve["wall_s"] else None,
        "compile_s": curve["compile_s"],
    }


def plot(env_name: str, curves: dict, target: float, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for agent, curve in curves.items():
        returns = np.asarray(curve["eval_returns"], np.float64)
        mean, low, high = returns.mean(0), returns.min(0), returns.max(0)
        kind = "model-based" if agent in MODEL_BASED else "model-free"
        label = f"{agent} ({kind}, {curve['seeds']} seeds)"
        style = "--" if agent == "pets" else "-"
        for ax, x in zip(axes, (curve["eval_steps"], curve["wall_s"]), strict=True):
            ax.plot(x, mean, style, color=COLORS[agent], label=label, marker=".")
            ax.fill_between(x, low, high, color=COLORS[agent], alpha=0.15)
    for ax, xlabel in zip(axes, ("real environment steps per seed", "wall-clock s"), strict=True):
        ax.axhline(target, color="k", ls=":", lw=1, label=f"target {target:g}")
        ax.set_xlabel(xlabel if xlabel.startswith("real") else "wall-clock s, all seeds")
        ax.set_ylabel("evaluation return (mean, range over seeds)")
        ax.grid(alpha=0.3)
    axes[1].set_xscale("log")
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"{env_name}: model-based vs model-free (CPU)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--envs", nargs="+", default=list(PLAN), choices=list(PLAN))
    parser.add_argument("--agents", nargs="+", default=None, help="run only these agents")
    parser.add_argument("--quick", action="store_true", help="2 seeds, budgets / 20")
    parser.add_argument(
        "--mbpo-seeds", type=int, default=5, help="MBPO's seeds (at most --seeds; ~8 min each)"
    )
    parser.add_argument("--rerun", action="store_true", help="ignore saved runs")
    parser.add_argument(
        "--out", default=None, help="default docs/model_based_vs_model_free (--quick: a temp dir)"
    )
    parser.add_argument("--pets-json", default="docs/pets.json")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    seeds = 2 if args.quick else args.seeds
    default_out = (
        Path(tempfile.gettempdir()) / "model_based_vs_model_free_quick"
        if args.quick
        else Path("docs/model_based_vs_model_free")
    )
    out = Path(args.out) if args.out else default_out
    summary_path = out.with_suffix(".json")
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {"envs": {}}
    for env_name in args.envs:
        target, plan = PLAN[env_name]
        curves = {}
        for agent, steps, chunks in plan:
            if args.quick:
                steps, chunks = max(500, steps // 20), max(2, chunks // 4)
            saved = out / env_name / f"{agent}.json"
            n = min(seeds, args.mbpo_seeds) if agent in SEED_BY_SEED else seeds
            kept = json.loads(saved.read_text()) if saved.exists() else None
            wanted = args.agents is None or agent in args.agents
            matches = kept is not None and kept["steps"] == steps
            matches = matches and (kept["seeds"] == n or not wanted)
            if wanted and (args.rerun or not matches):
                print(f"{env_name} {agent}: {n} seeds x {steps} steps", file=sys.stderr)
                if agent in SEED_BY_SEED:
                    # Seeds already run at this budget are kept; only the new ones run.
                    extend = kept is not None and kept["steps"] == steps and kept["seeds"] < n
                    extend = extend and not args.rerun
                    curves[agent] = run_agent_seed_by_seed(
                        env_name, agent, steps, chunks, n, kept if extend else None
                    )
                else:
                    curves[agent] = run_agent(env_name, agent, steps, chunks, n)
                saved.parent.mkdir(parents=True, exist_ok=True)
                saved.write_text(json.dumps(curves[agent]))
            elif matches:
                print(f"{env_name} {agent}: reusing {saved}", file=sys.stderr)
                curves[agent] = kept
        pets = pets_curve(env_name, Path(args.pets_json))
        if pets is not None:
            curves["pets"] = pets
        summary["envs"][env_name] = {
            "target": target,
            "agents": {a: summarize(c, target) for a, c in curves.items()},
            "curves": {
                a: {k: c[k] for k in ("description", "eval_steps", "eval_returns", "wall_s")}
                for a, c in curves.items()
            },
        }
        plot(env_name, curves, target, Path(f"{out}_{env_name}.png"))
        print(json.dumps({env_name: summary["envs"][env_name]["agents"]}, indent=1))
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(json.dumps(summary, indent=1))
    print(f"wrote {summary_path} and {out}_<env>.png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
