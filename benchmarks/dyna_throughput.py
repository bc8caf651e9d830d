"""Dyna-Q throughput: planning updates and environment steps per second.

Prints JSON. For n = 5 and n = 50 planning steps, sequential (textbook) and
batched planning, and 1, 64, 1024 and 8192 vmapped seeds: planning updates per
second, environment steps per second and compile time of the jitted
``vmap(train)``. In the same process, the same measurements for a plain
NumPy/Python Dyna-Q written the way textbooks write it (dictionary model,
``random.choice(list(model))``, NumPy Q-table, Python loops), so the ratios hold
on a noisy machine. Also prioritized sweeping at 1 and 1024 seeds.

    python benchmarks/dyna_throughput.py [--quick] [--out benchmarks/results/dyna_cpu.json]
"""

from __future__ import annotations

import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from common import argument_parser, compile_and_time_sharded, emit, time_python  # noqa: E402

import mbrl_jax  # noqa: E402
from mbrl_jax import envs  # noqa: E402
from mbrl_jax.agents import dyna_q  # noqa: E402
from mbrl_jax.agents import prioritized_sweeping as ps  # noqa: E402
from mbrl_jax.envs import layouts  # noqa: E402

MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))


def textbook_dyna_q(
    num_steps: int, planning_steps: int, seed: int = 0, alpha=0.1, epsilon=0.1, gamma=0.95
) -> dict:
    """Dyna-Q as textbooks write it: dict model, Python loops, NumPy Q-table."""
    rng = random.Random(seed)
    layout = layouts.DYNA_MAZE
    height, width = len(layout), len(layout[0])
    start = next((r, c) for r in range(height) for c in range(width) if layout[r][c] == "S")
    goal = next((r, c) for r in range(height) for c in range(width) if layout[r][c] == "G")
    q = np.zeros((height, width, 4))
    model: dict = {}
    state, episodes, updates = start, 0, 0
    for _ in range(num_steps):
        if rng.random() < epsilon:
            action = rng.randrange(4)
        else:
            values = q[state[0], state[1], :]
            action = rng.choice([a for a in range(4) if values[a] == np.max(values)])
        dr, dc = MOVES[action]
        r, c = state[0] + dr, state[1] + dc
        next_state = (r, c) if 0 <= r < height and 0 <= c < width and layout[r][c] != "#" else state
        reward = 1.0 if next_state == goal else 0.0
        done = next_state == goal
        target = reward + (0.0 if done else gamma * np.max(q[next_state[0], next_state[1], :]))
        q[state[0], state[1], action] += alpha * (target - q[state[0], state[1], action])
        model[(state, action)] = (reward, next_state, done)
        for _ in range(planning_steps):
            (s, a) = rng.choice(list(model.keys()))
            r_, s2, d = model[(s, a)]
            target = r_ + (0.0 if d else gamma * np.max(q[s2[0], s2[1], :]))
            q[s[0], s[1], a] += alpha * (target - q[s[0], s[1], a])
            updates += 1
        state = start if done else next_state
        episodes += done
    return {"episodes": episodes, "planning_updates": updates}


def measure(module, config, env, params, seeds: int) -> dict:
    train = module.make_train(config, env, params)
    keys = jax.random.split(jax.random.key(0), seeds)
    # The seeds are sharded over every device (one on a CPU). Time the whole
    # output: timing a value that does not depend on the learning would let
    # XLA drop the learning altogether.
    timing = compile_and_time_sharded(train, keys, repeats=5, min_seconds=0.3)
    out = mbrl_jax.jit(jax.vmap(train))(keys)
    updates = float(np.asarray(out.metrics.planning_updates).sum())
    steps_per_s = seeds * config.num_steps / timing["run_s"]
    return {
        "seeds": seeds,
        "num_steps": config.num_steps,
        **timing,
        "planning_updates_per_s": updates / timing["run_s"],
        "planning_updates_per_s_median": updates / timing["run_s_median"],
        "env_steps_per_s": steps_per_s,
        "env_steps_per_s_per_device": steps_per_s / timing["devices"],
    }


def main() -> None:
    parser = argument_parser(__doc__)
    args = parser.parse_args()
    seed_counts = [1, 64] if args.quick else [1, 64, 1024, 8192]
    env, params = envs.make("DynaMaze")
    results: dict = {
        "benchmark": "dyna_throughput",
        "quick": args.quick,
        "env": "DynaMaze",
        "jax": [],
        "reference": [],
        "ratios": [],
    }

    for n in (5, 50):
        ref_steps = 2000 if args.quick else (20_000 if n == 5 else 4000)
        seconds = time_python(lambda n=n, k=ref_steps: textbook_dyna_q(k, n), repeats=3)
        reference = {
            "planning_steps": n,
            "num_steps": ref_steps,
            "planning_updates_per_s": ref_steps * n / seconds,
            "env_steps_per_s": ref_steps / seconds,
        }
        results["reference"].append(reference)
        for mode in ("sequential", "batched"):
            for seeds in seed_counts:
                # Keep each measurement near the same amount of work.
                steps = int(np.clip(4_000_000 // (seeds * n), 200, 20_000))
                if args.quick:
                    steps = 200
                config = dyna_q.Config(num_steps=steps, planning_steps=n, planning=mode)
                row = {
                    "agent": "dyna_q",
                    "planning_steps": n,
                    "planning": mode,
                    **measure(dyna_q, config, env, params, seeds),
                }
                results["jax"].append(row)
                ratio = row["planning_updates_per_s"] / reference["planning_updates_per_s"]
                median = row["planning_updates_per_s_median"] / reference["planning_updates_per_s"]
                results["ratios"].append(
                    {
                        "planning_steps": n,
                        "planning": mode,
                        "seeds": seeds,
                        "updates_per_s_vs_reference": ratio,
                        "median_updates_per_s_vs_reference": median,
                    }
                )
                print(
                    f"dyna_q n={n:>2} {mode:>10} seeds={seeds:>5}: "
                    f"{row['planning_updates_per_s']:.3g} updates/s ({ratio:.1f}x reference, "
                    f"median {median:.1f}x), "
                    f"compile {row['compile_s']:.2f} s",
                    file=sys.stderr,
                )

    for seeds in seed_counts[:: max(1, len(seed_counts) - 2)]:
        config = ps.Config(num_steps=200 if args.quick else 2000, planning_steps=5)
        row = {
            "agent": "prioritized_sweeping",
            "planning_steps": 5,
            **measure(ps, config, env, params, seeds),
        }
        results["jax"].append(row)
        print(
            f"prioritized_sweeping seeds={seeds}: {row['planning_updates_per_s']:.3g} updates/s",
            file=sys.stderr,
        )
    emit(results, args.out)


if __name__ == "__main__":
    main()
