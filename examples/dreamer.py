"""Dreamer on Pendulum-v1 and CartPole-v1 (from states and from 64 x 64 pixels) and on
the DM Control Suite's cartpole swing-up:
learning curves, steps to target per seed, and the world model's open-loop
predictions against the real environment.

Each task runs seed by seed (base seeds 0, 1, ...) with Dreamer's default
settings (``dreamer.Config()``: the CPU-sized ``tiny`` RSSM, 16 x 16 latents,
train ratio 256, imagination of 15 steps from 256 of each batch's posterior
states). The run is cut into chunks; after every chunk the actor's mode is
evaluated in the real environment (5 episodes, posterior filtering). The
wall-clock of a point is the compile time plus the run time up to that chunk
(evaluations left out).

After each seed, the trained world model predicts 15 steps open loop (5
observed) along 16 real episodes of the trained policy
(:func:`mbrl_jax.models.rssm.open_loop`): the JSON holds the mean absolute
error per step, and ``docs/dreamer_open_loop_<task>.png`` shows seed 0's
predictions beside the real observations (frames, for pixels).

Writes ``<out>.json`` (curves per seed, the steps-to-target table, the
open-loop errors) and ``<out>.png``; each seed's run is kept as
``<out>/<task>/seed<k>.json`` and reused unless ``--rerun``.

    python examples/dreamer.py [--tasks pendulum cartpole cartpole_pixels pendulum_pixels
        cartpole_swingup_dmc cartpole_swingup_dmc_repeat2]
        [--seeds 3] [--long-seeds 1] [--first-seed 0]
        [--quick] [--rerun] [--out docs/dreamer]

``--quick`` runs one seed of each task with budgets cut 20-fold (its numbers
say nothing about the agent). ``--seeds`` applies to the short tasks; the
pixel tasks (CartPole at train ratio 64 for 100,000 steps, Pendulum at 128
for 20,000, instead of 256) and the DM Control Suite's
cartpole swing-up (MuJoCo Playground, the ``[dmc]`` extra; action repeat 1,
so 100,000 steps are 100 episodes; ``cartpole_swingup_dmc_repeat2``: action
repeat 2 as in DreamerV3's DM Control runs, rewards summed, train ratio 512 per
agent step, 100,000 simulator steps = 50,000 decisions) run ``--long-seeds``
(default 1: about two hours a seed on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mbrl_jax import envs  # noqa: E402
from mbrl_jax.agents import actor_critic as ac  # noqa: E402
from mbrl_jax.agents import dreamer  # noqa: E402
from mbrl_jax.core.chunked import chunk_sizes, run_units  # noqa: E402
from mbrl_jax.core.types import Transition  # noqa: E402
from mbrl_jax.envs import dmc  # noqa: E402
from mbrl_jax.envs.pixels import PixelObservation  # noqa: E402
from mbrl_jax.experiments.summary import first_reaching  # noqa: E402
from mbrl_jax.models import rssm  # noqa: E402

#: task -> (environment, pixels, real steps per seed, target return, chunks)
TASKS = {
    "pendulum": ("Pendulum-v1", False, 20_000, -200.0, 20),
    "cartpole": ("CartPole-v1", False, 50_000, 475.0, 25),
    "cartpole_pixels": ("CartPole-v1", True, 100_000, 475.0, 25),
    "pendulum_pixels": ("Pendulum-v1", True, 20_000, -200.0, 20),
    "cartpole_swingup_dmc": ("cartpole_swingup-dmc", False, 100_000, 700.0, 25),
    "cartpole_swingup_dmc_repeat2": ("cartpole_swingup-dmc", False, 100_000, 700.0, 25),
}
#: Action repeat of a task (default 1): its steps stay simulator steps (100,000
#: steps at repeat 2 are 50,000 agent decisions), as the DM Control benchmarks count.
REPEAT = {"cartpole_swingup_dmc_repeat2": 2}
#: Tasks of the DM Control Suite (the ``[dmc]`` extra).
DMC_TASK_KEYS = {task for task, spec in TASKS.items() if spec[0].endswith(dmc.SUFFIX)}
#: Tasks of about two hours a seed on a 2-core CPU: ``--long-seeds`` seeds (default 1).
LONG = {"cartpole_pixels", "pendulum_pixels"} | DMC_TASK_KEYS
#: Settings that differ from ``dreamer.Config()``: from pixels a world-model
#: update costs ~0.8 s on a 2-core CPU (the image encoder and decoder), so the
#: pixel run trains at a quarter of the train ratio to fit in about two hours.
#: At action repeat 2 the swing-up trains at DreamerV3's DM Control train ratio
#: (512 per agent step): the same number of updates as 256 at repeat 1.
OVERRIDES = {
    "cartpole_pixels": {"train_ratio": 64.0},
    "pendulum_pixels": {"train_ratio": 128.0},
    "cartpole_swingup_dmc_repeat2": {"train_ratio": 512.0},
}
EVAL_EPISODES = 5
OPEN_LOOP_CONTEXT, OPEN_LOOP_HORIZON = 5, 15
#: Names of the observation entries in the open-loop figures.
OBS_NAMES = {
    "Pendulum-v1": ("cos theta", "sin theta", "angular velocity"),
    "CartPole-v1": ("cart position", "cart velocity", "pole angle", "pole angular velocity"),
}


def make_env(task: str):
    name, pixels, *_ = TASKS[task]
    repeat = {"action_repeat": REPEAT[task]} if task in REPEAT else {}
    env, params = envs.make(name, **repeat)
    return (PixelObservation(env, size=64) if pixels else env), params


def agent_steps(task: str, steps: int) -> int:
    """Agent decisions (``Config.num_steps``) of ``steps`` simulator steps."""
    return steps // REPEAT.get(task, 1)


def run_seed(task: str, seed: int, steps: int, chunks: int, log) -> dict:
    """One seed of one task: the evaluation curve, wall-clock and open-loop errors."""
    env, params = make_env(task)
    repeat = REPEAT.get(task, 1)
    config = dreamer.Config(num_steps=agent_steps(task, steps), **OVERRIDES.get(task, {}))
    chunked = dreamer.make_chunked(config, env, params)
    per_chunk = chunk_sizes(chunked.num_units, chunks)
    start = time.perf_counter()
    init = jax.jit(chunked.init).lower(jax.random.key(seed)).compile()
    state = init(jax.random.key(seed))
    run = jax.jit(run_units(chunked, per_chunk)).lower(state).compile()
    evaluate = jax.jit(chunked.evaluate, static_argnums=2)
    evaluate = evaluate.lower(state, jax.random.key(0), EVAL_EPISODES).compile()
    compile_s = time.perf_counter() - start
    curve = {"eval_steps": [], "eval_returns": [], "wall_s": []}
    losses = []
    run_s = 0.0
    for c in range(chunked.num_units // per_chunk):
        start = time.perf_counter()
        state, outs = run(state)
        jax.block_until_ready(outs)
        run_s += time.perf_counter() - start
        result = evaluate(state, jax.random.fold_in(jax.random.key(10_000 + seed), c))
        curve["eval_steps"].append(int(state.t) * repeat)
        curve["eval_returns"].append(float(np.mean(result.returns)))
        curve["wall_s"].append(compile_s + run_s)
        losses.append({k: float(np.mean(v)) for k, v in outs[1].items()})
        log(
            f"  {task} seed {seed}: {curve['eval_steps'][-1]} steps, "
            f"eval {curve['eval_returns'][-1]:.1f}, {run_s:.0f} s"
        )
    errors, example = open_loop_errors(config, env, params, state.agent, seed)
    return {
        "task": task,
        "seed": seed,
        "action_repeat": repeat,
        "config": {k: v for k, v in dataclasses.asdict(config).items()},
        "compile_s": compile_s,
        "run_s": run_s,
        **curve,
        "losses": losses,
        "open_loop_mae": errors,
        "open_loop_example": example,
    }


def policy_episodes(config, env, params, agent, key, episodes: int, length: int) -> Transition:
    """``[episodes, length]`` real transitions of the trained actor (its mode), filtered
    with the posterior as it acts."""
    spec = dreamer.env_spec(env, params)
    mcfg = dreamer.model_config(config, spec)
    acfg = config.actor_critic(spec.discrete)
    model_params = agent.model.params
    reset_key, latent_key, loop_key = jax.random.split(key, 3)
    obs, states = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(reset_key, episodes), params
    )
    latent = rssm.first_state(mcfg, model_params, latent_key, rssm.encode(mcfg, model_params, obs))

    def body(carry, k):
        obs, states, latent = carry
        env_key, filter_key = jax.random.split(k)
        feat = rssm.feature(latent)
        action = ac.sample_action(
            acfg, spec.action_size, spec.discrete, agent.behaviour.actor_params, k, feat, True
        )
        env_action = dreamer.to_env_action(spec, action)
        next_obs, states, reward, term, trunc, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(env_key, episodes), states, env_action, params
        )
        last = term | trunc
        latent = dreamer.filter_latent(
            mcfg, model_params, filter_key, latent, action, next_obs, last
        )
        step = Transition(
            obs, action, reward.astype(jnp.float32), info["final_observation"], term, last
        )
        return (next_obs.astype(obs.dtype), states, latent), step

    _, steps = jax.lax.scan(body, (obs, states, latent), jax.random.split(loop_key, length))
    return jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), steps)


def open_loop_errors(config, env, params, agent, seed: int):
    """Mean absolute open-loop error per predicted step (valid steps only) and one
    example window (seed 0's figure)."""
    spec = dreamer.env_spec(env, params)
    mcfg = dreamer.model_config(config, spec)
    length = OPEN_LOOP_CONTEXT + OPEN_LOOP_HORIZON
    collect = jax.jit(lambda a, k: policy_episodes(config, env, params, a, k, 16, length))
    window = collect(agent, jax.random.key(20_000 + seed))
    out = jax.jit(rssm.open_loop, static_argnums=(0, 4))(
        mcfg, agent.model.params, jax.random.key(30_000 + seed), window, OPEN_LOOP_CONTEXT
    )
    predicted = np.asarray(out.predicted, np.float64)
    real = np.asarray(out.real, np.float64)
    valid = np.asarray(out.valid)
    axes = tuple(range(2, predicted.ndim))
    error = np.abs(predicted - real).mean(axis=axes)  # [B, H]
    per_step = (error * valid).sum(0) / np.maximum(valid.sum(0), 1)
    example = {
        "predicted": np.asarray(out.predicted[0]).tolist(),
        "real": np.asarray(out.real[0]).tolist(),
    }
    return per_step.tolist(), example


def load_or_run(task: str, seed: int, steps: int, chunks: int, out: Path, rerun: bool, log):
    path = out / task / f"seed{seed}.json"
    if path.exists() and not rerun:
        saved = json.loads(path.read_text())
        if saved["eval_steps"] and saved["config"]["num_steps"] == agent_steps(task, steps):
            log(f"  {task} seed {seed}: reusing {path}")
            return saved
    result = run_seed(task, seed, steps, chunks, log)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result))
    return result


def summarize(runs: list[dict], target: float) -> dict:
    returns = np.asarray([r["eval_returns"] for r in runs])
    reached = [first_reaching(r["eval_steps"], r["eval_returns"], target) for r in runs]
    hits = [s for s in reached if s is not None]
    return {
        "seeds": len(runs),
        "steps": runs[0]["eval_steps"][-1],
        "target": target,
        "steps_to_target_per_seed": reached,
        "median_steps_to_target": float(np.median(hits)) if hits else None,
        "final_eval_per_seed": returns[:, -1].tolist(),
        "final_eval_mean": float(returns[:, -1].mean()),
        "mean_of_last_5_evals_per_seed": returns[:, -5:].mean(1).tolist(),
        "best_eval_mean": float(returns.mean(0).max()),
        "wall_s_per_seed": [r["wall_s"][-1] for r in runs],
        "compile_s_per_seed": [r["compile_s"] for r in runs],
        "open_loop_mae_mean_per_seed": [float(np.mean(r["open_loop_mae"])) for r in runs],
    }


def plot_curves(results: dict, path: Path) -> None:
    tasks = list(results)
    fig, axes = plt.subplots(2, len(tasks), figsize=(5 * len(tasks), 7.5), squeeze=False)
    for i, task in enumerate(tasks):
        runs, target = results[task]["runs"], results[task]["summary"]["target"]
        for run in runs:
            axes[0, i].plot(
                run["eval_steps"],
                run["eval_returns"],
                marker=".",
                alpha=0.8,
                label=f"seed {run['seed']}",
            )
            axes[1, i].plot(run["wall_s"], run["eval_returns"], marker=".", alpha=0.8)
        steps_label = "simulator steps" if task in REPEAT else "real environment steps"
        for ax, xlabel in ((axes[0, i], steps_label), (axes[1, i], "wall-clock s")):
            ax.axhline(target, color="k", ls=":", lw=1)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("evaluation return")
            ax.grid(alpha=0.3)
        repeat = f", action repeat {REPEAT[task]}" if task in REPEAT else ""
        axes[0, i].set_title(f"Dreamer, {task}\n({TASKS[task][0]}{repeat})", fontsize=9)
        axes[0, i].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_open_loop(task: str, run: dict, path: Path) -> None:
    predicted = np.asarray(run["open_loop_example"]["predicted"])
    real = np.asarray(run["open_loop_example"]["real"])
    if predicted.ndim == 4:  # frames [H, size, size, 3]
        steps = list(range(0, predicted.shape[0], 2))
        fig, axes = plt.subplots(2, len(steps), figsize=(1.3 * len(steps), 3.0))
        for j, t in enumerate(steps):
            for row, frames in enumerate((real, predicted)):
                axes[row, j].imshow(frames[t].astype(np.uint8))
                axes[row, j].set_xticks([])
                axes[row, j].set_yticks([])
            axes[0, j].set_title(f"t+{t + 1}", fontsize=8)
        axes[0, 0].set_ylabel("real", fontsize=8)
        axes[1, 0].set_ylabel("imagined", fontsize=8)
    else:
        dims = predicted.shape[1]
        fig, axes = plt.subplots(1, dims, figsize=(3.2 * dims, 2.8), squeeze=False)
        t = np.arange(1, predicted.shape[0] + 1)
        for d in range(dims):
            axes[0, d].plot(t, real[:, d], "k.-", label="real")
            axes[0, d].plot(t, predicted[:, d], "C3.--", label="imagined")
            names = OBS_NAMES.get(TASKS[task][0], ())
            axes[0, d].set_title(names[d] if d < len(names) else f"observation {d}", fontsize=9)
            axes[0, d].set_xlabel("open-loop step")
        axes[0, 0].legend(fontsize=8)
    fig.suptitle(
        f"{task}: {OPEN_LOOP_CONTEXT} steps observed, then {OPEN_LOOP_HORIZON} imagined", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--long-seeds", type=int, default=1)
    parser.add_argument(
        "--first-seed", type=int, default=0, help="run seeds first..first+n-1 (parallel runs)"
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rerun", action="store_true")
    parser.add_argument("--out", default="docs/dreamer")
    args = parser.parse_args(argv)
    out = Path(args.out)
    seeds = 1 if args.quick else args.seeds
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    json_path = out.with_suffix(".json")
    results = {}
    for task in args.tasks:
        _, _, steps, target, chunks = TASKS[task]
        if args.quick:
            steps, chunks = steps // 20, 4
        if task in DMC_TASK_KEYS and not dmc.dmc_available():
            log(f"{task}: skipped, MuJoCo Playground is not installed ({dmc.EXTRA_HINT})")
            continue
        n = min(seeds, args.long_seeds) if task in LONG else seeds
        first = args.first_seed
        runs = [
            load_or_run(task, s, steps, chunks, out, args.rerun, log)
            for s in range(first, first + n)
        ]
        results[task] = {"runs": runs, "summary": summarize(runs, target)}
        plot_open_loop(task, runs[0], out.parent / f"{out.name}_open_loop_{task}.png")
        log(f"{task}: {json.dumps(results[task]['summary'])}")
    slim = {
        task: {
            "summary": r["summary"],
            "runs": [
                {k: v for k, v in run.items() if k != "open_loop_example"} for run in r["runs"]
            ],
        }
        for task, r in results.items()
    }
    # Tasks run by other invocations are kept (read now: one may have finished meanwhile).
    saved = json.loads(json_path.read_text())["tasks"] if json_path.exists() else {}
    merged = {**saved, **slim}
    json_path.write_text(json.dumps({"tasks": merged}, indent=1))
    plot_curves({task: merged[task] for task in TASKS if task in merged}, out.with_suffix(".png"))
    return merged


if __name__ == "__main__":
    main()
