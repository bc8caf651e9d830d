"""Running several agents x many seeds on one environment, and reporting the comparison.

Each agent is compiled once and runs all seeds vmapped, chunk by chunk
(:mod:`mbrl_jax.experiments.chunked_run`: progress, evaluation of the greedy /
noiseless policy, a JSON-lines log, TensorBoard, checkpoints and resume), the
seeds sharded over the devices (:mod:`mbrl_jax.core.sharding`; over several
processes too, after :func:`~mbrl_jax.core.sharding.initialize_distributed`).
The report is a table, learning-curve PNGs and ``results.json``.

``results.json`` format (shared by every agent of the library)::

    {
      "env": "DynaMaze",
      "seeds": 30,
      "budget": {"steps": 3000, "episodes": null},
      "optimal_path_length": 14,            # mazes only, else null
      "agents": {
        "<agent spec as given>": {
          "description": "...",
          "episode_returns": [[...], ...],  # per seed, completed episodes only
          "episode_lengths": [[...], ...],  # per seed, completed episodes only
          "cumulative_reward": {"steps": [...], "per_seed": [[...], ...]},
          "compile_s": ..., "run_s": ..., "checkpoint_s": ...,
          "real_steps": ...,                # mean environment steps per seed
          "planned_real_steps": ...,        # the budget the agent was given
          "planning_updates": ...,          # mean model updates per seed
          "eval_steps": [...],              # real steps at each evaluation
          "eval_returns": [[...], ...],     # per seed, mean return at each point
          "eval_lengths": [[...], ...],     # per seed, mean episode length
          "eval_episodes": 10, "eval_note": "...",
          "resumed_at_steps": 0,            # > 0: continued from a checkpoint
          "summary": {...}                  # the table's numbers
        }
      }
    }
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

from mbrl_jax.core.sharding import device_mesh, gather, make_sharded
from mbrl_jax.experiments.chunked_run import RunOptions, Sinks, prepare, run_chunked
from mbrl_jax.experiments.outputs import (
    MAX_STEPS,
    check_memory,
    output_bytes,
    writable_dir,
    write_atomic,
)
from mbrl_jax.experiments.plots import plot_curves
from mbrl_jax.experiments.registry import Budget, CommonSettings, build, extract, parse_spec
from mbrl_jax.experiments.summary import format_table, stream_entry, summarize

__all__ = [
    "DEFAULT_AGENTS",
    "DEFAULT_ENV",
    "RunOptions",
    "format_table",
    "optimal_path_length",
    "run_comparison",
    "summarize",
    "write_outputs",
]

DEFAULT_ENV = "DynaMaze"
DEFAULT_AGENTS = (
    "q_learning",
    "dyna_q:5",
    "dyna_q:50",
    "dyna_q_plus:50",
    "prioritized_sweeping:5",
)


def optimal_path_length(env, env_params) -> int | None:
    """Shortest start-to-goal path of a maze (phase 0 walls); ``None`` for other envs."""
    from mbrl_jax.envs.maze import GridMaze
    from mbrl_jax.envs.tabular import to_tabular
    from mbrl_jax.planners.dp import greedy_path_length, value_iteration

    if not isinstance(env, GridMaze):
        return None
    sparse = to_tabular(env, env_params, sparse=True)
    # Intended moves only: the shortest path ignores slip.
    mdp = sparse.replace(prob=sparse.prob.at[..., 1:].set(0.0).at[..., 0].set(1.0))
    length = int(greedy_path_length(mdp, value_iteration(mdp, 0.99).policy))
    return length if length > 0 else None


def run_comparison(
    env_name: str = DEFAULT_ENV,
    agents=DEFAULT_AGENTS,
    seeds: int = 30,
    steps: int | None = None,
    episodes: int | None = None,
    settings: CommonSettings | None = None,
    near_optimal: float = 1.3,
    seed: int = 0,
    log=None,
    devices: int | str = "all",
    options: RunOptions | None = None,
) -> dict:
    """Runs every agent over ``seeds`` seeds; returns the ``results.json`` dictionary.

    Args:
      env_name: environment name (see :func:`mbrl_jax.envs.names`).
      agents: agent specs (see :func:`mbrl_jax.experiments.registry.agent_names`).
      seeds: number of seeds, vmapped in one call per agent.
      steps: environment steps per seed (default 3000, or a cap of
        ``400 * episodes + 5000`` with ``episodes``).
      episodes: stop each seed after this many episodes.
      settings: shared hyper-parameters.
      near_optimal: an episode is near-optimal within this factor of the shortest path.
      seed: base PRNG seed.
      log: ``print``-like progress sink (default: standard error).
      devices: devices to shard the seeds over, an integer or ``"all"``.
      options: how each agent's run is driven (chunks, evaluation, progress,
        logs, checkpoints and resume; :class:`~mbrl_jax.experiments.chunked_run.RunOptions`).

    Raises:
      ValueError: unknown environment or agent, or an agent that cannot run on the env.
    """
    from mbrl_jax import envs

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    options = options or RunOptions()
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    for spec in agents:
        parse_spec(spec)
    mesh = device_mesh(devices)
    env, env_params = envs.make(env_name)
    settings = settings or CommonSettings()
    explicit = steps is not None
    if steps is None:
        steps = 3000 if episodes is None else 400 * episodes + 5000
    budget = Budget(num_steps=steps, episodes=episodes, explicit_steps=explicit)
    if steps > MAX_STEPS:
        raise ValueError(
            f"a step budget of {steps} per seed is more than {MAX_STEPS} "
            f"(int32 step counters){' (from --episodes)' if not explicit else ''}"
        )
    runs = {spec: build(spec, env, env_params, budget, settings) for spec in agents}
    optimal = optimal_path_length(env, env_params)
    keys = jax.random.split(jax.random.key(seed), seeds)
    # The output shapes (traced, not compiled) say what each run will hold in
    # memory, so an impossible run fails here, before anything compiles.
    sizes = {
        spec: output_bytes(jax.eval_shape(jax.vmap(run.train), keys)) for spec, run in runs.items()
    }
    check_memory(sizes, seeds, steps)
    if options.checkpoint_dir is not None:
        writable_dir(options.checkpoint_dir, "--checkpoint-dir")
    if options.tensorboard is not None:
        writable_dir(options.tensorboard, "--tensorboard")
    log("outputs: " + ", ".join(f"{spec} {size / 2**20:.1f} MiB" for spec, size in sizes.items()))
    results = {
        "env": env_name,
        "seeds": seeds,
        "seed": seed,
        "budget": {"steps": steps, "episodes": episodes},
        "settings": settings.__dict__,
        "optimal_path_length": optimal,
        "devices": {
            "count": int(mesh.devices.size),
            "processes": jax.process_count(),
            "backend": jax.default_backend(),
        },
        "run_options": dataclasses.asdict(options),
        "agents": {},
    }
    identity = {
        "env": env_name,
        "seeds": seeds,
        "seed": seed,
        "budget": results["budget"],
        "settings": results["settings"],
        "jax": jax.__version__,
    }
    sinks = Sinks(options, log)  # a log file that cannot be written fails here
    compiled_s = {}
    try:
        # Every agent compiles before any runs.
        for i, (spec, run) in enumerate(runs.items(), start=1):
            log(f"[{i}/{len(runs)}] {spec}: compiling ({run.description})")
            with sinks.compiling(spec):
                compiled_s[spec] = (
                    prepare(run.chunked, keys, mesh, options)[0] if run.chunked else 0.0
                )
        for i, (spec, run) in enumerate(runs.items(), start=1):
            prefix = f"[{i}/{len(runs)}] {spec}"
            planned = steps if run.real_steps is None else run.real_steps
            log(
                f"{prefix}: running {seeds} seeds x {planned} real steps"
                f"{' (at most)' if episodes is not None else ''} on {mesh.devices.size} device(s)"
            )
            if run.chunked is not None:
                ran = run_chunked(
                    spec,
                    run.chunked,
                    keys,
                    mesh,
                    options,
                    sinks,
                    dict(identity, agent=spec),
                    log,
                )
                ran["compile_s"] += compiled_s[spec]
            else:
                ran = _run_whole(run, keys, mesh, seeds)
            extracted = extract(ran["output"])
            entry = summarize(extracted, optimal, near_optimal)
            entry.update(stream_entry(extracted, episodes, run, planned, seeds))
            entry.update(
                description=run.description,
                compile_s=ran["compile_s"],
                run_s=ran["run_s"],
                checkpoint_s=ran.get("checkpoint_s", 0.0),
                resumed_at_steps=ran.get("resumed_at_steps", 0),
                eval_steps=ran.get("eval_steps", []),
                eval_returns=ran.get("eval_returns", []),
                eval_lengths=ran.get("eval_lengths", []),
                eval_episodes=ran.get("eval_episodes", 0),
                eval_note=ran.get("eval_note", ""),
            )
            entry["summary"].update(
                compile_s=ran["compile_s"],
                run_s=ran["run_s"],
                final_eval_return=_final_mean(entry["eval_returns"]),
                final_eval_length=_final_mean(entry["eval_lengths"]),
            )
            results["agents"][spec] = entry
            log(f"{prefix}: done in {ran['compile_s']:.1f} s compile + {ran['run_s']:.2f} s run")
    finally:
        sinks.close()
    return results


def _final_mean(per_seed: list) -> float | None:
    """Mean over seeds of each seed's last evaluation (``None`` where there is none)."""
    last = [row[-1] for row in per_seed if row and row[-1] is not None]
    return float(np.mean(last)) if last else None


def _run_whole(run, keys, mesh, seeds: int) -> dict:
    """An agent without a chunked form: its ``train`` in one sharded call."""
    start = time.perf_counter()
    sharded = make_sharded(run.train, mesh)
    inputs, _ = sharded.inputs(keys)
    compiled = sharded.compiled.lower(*inputs).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    out = jax.block_until_ready(compiled(*inputs))
    return {
        "output": gather(out, seeds),
        "compile_s": compile_s,
        "run_s": time.perf_counter() - start,
    }


def write_outputs(results: dict, out_dir: str | Path) -> dict[str, Path]:
    """Writes ``results.json`` and ``learning_curves.png`` into ``out_dir``, each atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "results.json"
    png_path = out / "learning_curves.png"
    write_atomic(json_path, lambda tmp: tmp.write_text(json.dumps(results)))
    write_atomic(png_path, lambda tmp: plot_curves(results, tmp))
    return {"json": json_path, "png": png_path}
