"""Does Dyna-DQN's model help at equal settings? DQN and Dyna-DQN on CartPole-v1
at two learning rates, 1 to 32 updates per real step, with and without
LayerNorm, with and without the model.

Each variant runs 5 seeds (``split(key(0), 5)``, the seeds of
``examples/model_based_vs_model_free.py``) through the comparison runner, the
greedy policy evaluated over 5 episodes every 2,500 steps (every 500 in the
10,000-step ``f_`` variants); the table is the first evaluation at >= 475 per
seed.

    python examples/dyna_dqn_ablation.py [--variants dqn_lr1e-3 ...] [--rerun]
        [--out docs/dyna_dqn_ablation]

Writes ``<out>.json`` (every curve and the table); each variant's run is kept as
``<out>/<variant>.json`` and reused unless ``--rerun``. About 1-13 minutes a
variant on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from mbrl_jax.agents import dqn, dyna_dqn
from mbrl_jax.experiments import compare, registry
from mbrl_jax.experiments.chunked_run import RunOptions
from mbrl_jax.experiments.summary import first_reaching

TARGET = 475.0
SEEDS = 5
EVAL_EVERY_STEPS = 2_500
#: The short runs' evaluation interval: their steps to target are a few thousand.
FINE_EVAL_EVERY_STEPS = 500
#: DQN settings of the short runs: LayerNorm, 1e-3, epsilon falling over 5,000 steps.
_FAST = {"learning_rate": 1e-3, "layer_norm": True, "exploration_fraction": 0.5}
#: name -> (agent, real steps, Dyna-DQN overrides, DQN overrides[, evaluation
#: interval]). Every other setting is the agent's default (Dyna-DQN's DQN: two
#: updates per step, epsilon falling over 20% of the run; DQN: one update per
#: step, 10% of the run); the evaluation interval defaults to EVAL_EVERY_STEPS.
VARIANTS = {
    "dqn_lr1e-3": ("dqn", 100_000, {}, {"learning_rate": 1e-3}),
    "dqn_2updates_lr1e-3": (
        "dqn",
        50_000,
        {},
        {"learning_rate": 1e-3, "gradient_steps": 2, "exploration_fraction": 0.2},
    ),
    "dyna_dqn_lr1e-3": ("dyna_dqn", 50_000, {}, {"learning_rate": 1e-3}),
    # More updates per real step: where a model's data should help most.
    "dqn_4updates_lr1e-3": (
        "dqn",
        50_000,
        {},
        {"learning_rate": 1e-3, "gradient_steps": 4, "exploration_fraction": 0.2},
    ),
    "dyna_dqn_4updates_lr1e-3": (
        "dyna_dqn",
        50_000,
        {},
        {"learning_rate": 1e-3, "gradient_steps": 4},
    ),
    "dyna_dqn_k10": ("dyna_dqn", 50_000, {"rollout_length": 10, "rollout_batch": 1000}, {}),
    "dyna_dqn_k10_lr1e-3": (
        "dyna_dqn",
        50_000,
        {"rollout_length": 10, "rollout_batch": 1000},
        {"learning_rate": 1e-3},
    ),
    # Eight updates per step (25k steps, epsilon over 5k), with and without
    # LayerNorm; Dyna-DQN imagines 10,000 rollouts a block for the larger demand.
    "dqn_8u_lr1e-3": (
        "dqn",
        25_000,
        {},
        {"learning_rate": 1e-3, "gradient_steps": 8, "exploration_fraction": 0.2},
    ),
    "dyna_8u_lr1e-3_rb10k": (
        "dyna_dqn",
        25_000,
        {"rollout_batch": 10_000, "model_buffer_size": 50_000},
        {"learning_rate": 1e-3, "gradient_steps": 8},
    ),
    "dqn_8u_lr1e-3_ln": (
        "dqn",
        25_000,
        {},
        {
            "learning_rate": 1e-3,
            "gradient_steps": 8,
            "exploration_fraction": 0.2,
            "layer_norm": True,
        },
    ),
    "dyna_8u_lr1e-3_ln_rb10k": (
        "dyna_dqn",
        25_000,
        {"rollout_batch": 10_000, "model_buffer_size": 50_000},
        {"learning_rate": 1e-3, "gradient_steps": 8, "layer_norm": True},
    ),
    # LayerNorm and 4-32 updates per step: 10k steps, evaluated every 500.
    "f_dqn_4u_ln": ("dqn", 10_000, {}, {**_FAST, "gradient_steps": 4}, FINE_EVAL_EVERY_STEPS),
    "f_dqn_8u_ln": ("dqn", 10_000, {}, {**_FAST, "gradient_steps": 8}, FINE_EVAL_EVERY_STEPS),
    "f_dqn_16u_ln": ("dqn", 10_000, {}, {**_FAST, "gradient_steps": 16}, FINE_EVAL_EVERY_STEPS),
    "f_dqn_32u_ln": ("dqn", 10_000, {}, {**_FAST, "gradient_steps": 32}, FINE_EVAL_EVERY_STEPS),
    "f_dyna_8u_ln_rr075": (
        "dyna_dqn",
        10_000,
        {"rollout_batch": 10_000, "model_buffer_size": 50_000, "real_ratio": 0.75},
        {**_FAST, "gradient_steps": 8},
        FINE_EVAL_EVERY_STEPS,
    ),
    # A model fitted on more of the real data (10,000 transitions, 10 epochs).
    "f_dyna_8u_ln_rr075_fit10k": (
        "dyna_dqn",
        10_000,
        {
            "rollout_batch": 10_000,
            "model_buffer_size": 50_000,
            "real_ratio": 0.75,
            "model_fit_size": 10_000,
            "model_epochs": 10,
        },
        {**_FAST, "gradient_steps": 8},
        FINE_EVAL_EVERY_STEPS,
    ),
    "f_dyna_16u_ln_fit10k": (
        "dyna_dqn",
        10_000,
        {
            "rollout_batch": 20_000,
            "model_buffer_size": 100_000,
            "model_fit_size": 10_000,
            "model_epochs": 10,
        },
        {**_FAST, "gradient_steps": 16},
        FINE_EVAL_EVERY_STEPS,
    ),
    "f_dyna_16u_ln": (
        "dyna_dqn",
        10_000,
        {"rollout_batch": 20_000, "model_buffer_size": 100_000},
        {**_FAST, "gradient_steps": 16},
        FINE_EVAL_EVERY_STEPS,
    ),
    # Mostly imagined batches from 10-step rollouts at 16 and 32 updates a step.
    "f_dyna_16u_ln_k10_rr025": (
        "dyna_dqn",
        10_000,
        {
            "rollout_batch": 5000,
            "rollout_length": 10,
            "model_buffer_size": 100_000,
            "real_ratio": 0.25,
        },
        {**_FAST, "gradient_steps": 16},
        FINE_EVAL_EVERY_STEPS,
    ),
    "f_dyna_32u_ln_k10_rr025": (
        "dyna_dqn",
        10_000,
        {
            "rollout_batch": 10_000,
            "rollout_length": 10,
            "model_buffer_size": 200_000,
            "real_ratio": 0.25,
        },
        {**_FAST, "gradient_steps": 32},
        FINE_EVAL_EVERY_STEPS,
    ),
}


def eval_every(name: str) -> int:
    """Real steps between a variant's evaluations."""
    spec = VARIANTS[name]
    return spec[4] if len(spec) > 4 else EVAL_EVERY_STEPS


def variant_config(name: str, budget):
    """The variant's ``dyna_dqn.Config`` or ``dqn.Config`` at the runner's ``budget``."""
    agent, _, over, dqn_over = VARIANTS[name][:4]
    if agent == "dyna_dqn":
        default = dyna_dqn.Config()
        learner = dataclasses.replace(registry.budgeted(default.dqn, budget), **dqn_over)
        return dataclasses.replace(default, dqn=learner, **over)
    return dataclasses.replace(registry.budgeted(dqn.Config(), budget), **dqn_over)


def variant_run(name: str):
    """A registry builder for one variant (its budget comes from the runner)."""
    module = dyna_dqn if VARIANTS[name][0] == "dyna_dqn" else dqn

    def build(arg, env, env_params, budget, settings):
        config = variant_config(name, budget)
        return registry.AgentRun.of(module.make_chunked(config, env, env_params), name)

    return build


def run_variant(name: str) -> dict:
    """One variant over the 5 seeds: its evaluation curve and first hits."""
    steps = VARIANTS[name][1]
    spec = f"ablation_{name}"
    registry.register(spec, spec, name)(variant_run(name))
    options = RunOptions(
        chunks=steps // eval_every(name), eval_episodes=5, eval_every=1, progress=False
    )
    results = compare.run_comparison(
        "CartPole-v1", [spec], seeds=SEEDS, steps=steps, options=options, seed=0
    )
    entry = results["agents"][spec]
    returns = np.asarray(entry["eval_returns"])  # [seeds, points]
    return {
        "variant": name,
        "agent": VARIANTS[name][0],
        "steps": steps,
        "overrides": VARIANTS[name][2],
        "dqn_overrides": VARIANTS[name][3],
        "eval_steps": list(entry["eval_steps"]),
        "eval_returns": returns.tolist(),
        "first_at_target": first_hits(entry["eval_steps"], returns),
        "final_eval": returns[:, -1].tolist(),
        "run_s": entry["run_s"],
        "compile_s": entry["compile_s"],
    }


def first_hits(steps, returns) -> list[int | None]:
    """Per seed, the first evaluation step whose return reaches the target."""
    return [first_reaching([int(s) for s in steps], row, TARGET) for row in np.asarray(returns)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--rerun", action="store_true")
    parser.add_argument("--out", default="docs/dyna_dqn_ablation")
    args = parser.parse_args(argv)
    out = Path(args.out)
    runs = {}
    for name in args.variants:
        saved = out / f"{name}.json"
        if saved.exists() and not args.rerun:
            print(f"{name}: reusing {saved}", file=sys.stderr)
            runs[name] = json.loads(saved.read_text())
            continue
        print(f"{name}: {SEEDS} seeds x {VARIANTS[name][1]} steps", file=sys.stderr)
        runs[name] = run_variant(name)
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(runs[name]))
    table = {
        name: {"first_at_target": r["first_at_target"], "final_eval": r["final_eval"]}
        for name, r in runs.items()
    }
    out.with_suffix(".json").write_text(json.dumps({"target": TARGET, "runs": runs}, indent=1))
    print(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
