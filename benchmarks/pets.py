"""PETS throughput: ensemble training, CEM planning, time to solve the continuous cart-pole.

Prints JSON:
- the practical matmul ceiling of this machine (a large ``jnp.dot``, GFLOP/s);
- ensemble training: gradient steps per second for E = 5 and 7 members,
  4 hidden layers of 200, batch 256 per member, and the GFLOP/s that reaches;
- planning: milliseconds per action for CEM at mbrl-lib's cart-pole settings
  (population 350 / horizon 15 and 500 / 30; 5 iterations, 20 particles,
  5 members), the GFLOP/s of its model evaluations as a fraction of the
  matmul rate (timed alternately with the plan, median of the per-round
  ratios), and a plain-NumPy CEM making the same model evaluations (one
  action) in the same run;
- the planner vmapped over 64 environments, sharded over the devices (actions
  per second, total and per device);
- compile time of ``fit`` and of one planning step;
- the planner PETS runs by default (iCEM, smaller population, fewer
  particles and iterations): milliseconds and GFLOP per action beside the
  GFLOP per action of mbrl-lib's settings;
- time to solve: wall-clock seconds, compile included, from the start of PETS
  with the default settings until a trial of the continuous cart-pole returns
  >= 190.

    python benchmarks/pets.py [--quick] [--out benchmarks/results/pets_cpu.json]
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from common import argument_parser, compile_and_time, compile_and_time_sharded, emit  # noqa: E402

import mbrl_jax  # noqa: E402
from mbrl_jax import envs  # noqa: E402
from mbrl_jax.agents import pets  # noqa: E402
from mbrl_jax.core.replay import buffer_add, buffer_init  # noqa: E402
from mbrl_jax.core.types import Transition  # noqa: E402
from mbrl_jax.models import with_task  # noqa: E402
from mbrl_jax.models.ensemble import Ensemble, EnsembleConfig, ensemble_model  # noqa: E402
from mbrl_jax.planners.shooting import ActionSpec, MPCConfig, make_planner  # noqa: E402


def mlp_flops(config: EnsembleConfig) -> float:
    """Multiply-adds x 2 of one forward pass of one member on one input."""
    sizes = [config.input_dim] + [config.hidden_size] * config.num_layers
    flops = sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    return flops + 2 * 2 * config.hidden_size * config.output_dim  # mean and log-variance heads


def matmul_ceiling(size: int) -> float:
    a = jnp.ones((size, size), jnp.float32)
    timing = compile_and_time(lambda x: x @ x, a, repeats=3, min_seconds=0.3)
    return 2 * size**3 / timing["run_s"] / 1e9


def paired_with_matmul(plan, key, gflop: float, size: int, rounds: int) -> dict:
    """Times ``plan(key)`` and the ceiling's ``size x size`` matmul alternately.

    This machine's speed drifts by tens of percent within a minute, so a
    ceiling measured once at the start and a plan timed later can disagree
    for reasons that are neither's. Each round times one matmul batch (at
    least 0.1 s) and then one plan call; the fraction reported is the median
    over rounds of the plan's GFLOP/s over that round's matmul GFLOP/s.

    Returns ``{"compile_s", "run_s" (best), "run_s_median",
    "fraction_of_matmul_ceiling" (paired median), "fraction_best_vs_best",
    "matmul_gflops_median"}``.
    """
    start = time.perf_counter()
    compiled = mbrl_jax.jit(plan).lower(key).compile()
    compile_s = time.perf_counter() - start
    a = jnp.ones((size, size), jnp.float32)
    dot = mbrl_jax.jit(lambda x: x @ x).lower(a).compile()
    # Warm-up: on this machine the first calls after compiling run up to 1.5x
    # slower for several seconds (fresh memory being faulted in).
    start = time.perf_counter()
    while time.perf_counter() - start < 2.0:
        jax.block_until_ready((compiled(key), dot(a)))
    plan_s, dot_gflops = [], []
    for _ in range(rounds):
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < 0.1:
            jax.block_until_ready(dot(a))
            calls += 1
        dot_gflops.append(2 * size**3 * calls / (time.perf_counter() - start) / 1e9)
        start = time.perf_counter()
        jax.block_until_ready(compiled(key))
        plan_s.append(time.perf_counter() - start)
    plan_gflops = gflop / np.asarray(plan_s)
    return {
        "compile_s": compile_s,
        "run_s": min(plan_s),
        "run_s_median": float(np.median(plan_s)),
        "fraction_of_matmul_ceiling": float(np.median(plan_gflops / np.asarray(dot_gflops))),
        "fraction_best_vs_best": float(plan_gflops.max() / max(dot_gflops)),
        "matmul_gflops_median": float(np.median(dot_gflops)),
    }


def training_rate(members: int, quick: bool) -> dict:
    config = EnsembleConfig(
        obs_dim=4,
        action_dim=1,
        ensemble_size=members,
        num_elites=min(members, 5),
        hidden_size=200,
        num_layers=4,
        batch_size=256,
        holdout_ratio=0.0,
    )
    ens = Ensemble(config)
    n = 2560 if quick else 25_600
    key = jax.random.key(0)
    data = Transition(
        state=jax.random.normal(key, (n, 4)),
        action=jax.random.uniform(key, (n, 1), minval=-1, maxval=1),
        reward=jnp.zeros(n),
        next_state=jax.random.normal(jax.random.key(1), (n, 4)),
        done=jnp.zeros(n, bool),
    )
    buffer = buffer_add(buffer_init(jax.tree.map(lambda x: x[0], data), n), data)
    state = ens.init(key)
    timing = compile_and_time(
        lambda k, s, b: ens.fit(k, s, b, 1), key, state, buffer, repeats=3, min_seconds=0.5
    )
    steps = n // 256
    # Forward and backward: about three forward passes' worth of FLOPs.
    gflops = 3 * mlp_flops(config) * 256 * members * steps / timing["run_s"] / 1e9
    return {
        "members": members,
        "batch_per_member": 256,
        "fit_compile_s": timing["compile_s"],
        "gradient_steps_per_s": steps / timing["run_s"],
        "gradient_steps_per_s_median": steps / timing["run_s_median"],
        "gflops": gflops,
    }


def numpy_cem_action(weights, obs, population, horizon, particles, iterations, elites, rng):
    """CEM for one action in plain NumPy: the same network, population, particles,
    horizon and iterations (so the same model evaluations, FLOP for FLOP), with
    simplified bookkeeping (no normaliser; reward 1 while the pole is up)."""
    members = len(weights)
    mean, std = np.zeros((horizon, 1)), np.full((horizon, 1), 0.5)
    for _ in range(iterations):
        actions = np.clip(mean + std * rng.standard_normal((population, horizon, 1)), -1, 1)
        state = np.repeat(obs[None], population * particles, 0).reshape(members, -1, 4)
        flat = np.repeat(actions, particles, 0).reshape(members, -1, horizon, 1)
        total = np.zeros(state.shape[:2])
        for t in range(horizon):
            x = np.concatenate([state, flat[:, :, t]], -1)
            for m in range(members):
                h = x[m]
                for w, b in weights[m][:-1]:
                    h = h @ w + b
                    h = h / (1 + np.exp(-h))
                w, b = weights[m][-1]
                state[m] = state[m] + (h @ w + b)[:, :4] * 0.01
            total += (np.abs(state[..., 2]) < 0.21).astype(float)
        returns = total.reshape(population, particles).mean(1)
        top = actions[np.argsort(-returns)[:elites]]
        mean, std = 0.1 * mean + 0.9 * top.mean(0), 0.1 * std + 0.9 * top.std(0)
    return mean[0]


def cartpole_plan_fn(ens_config: EnsembleConfig, mpc: MPCConfig, propagation: str):
    """``plan(key) -> action``: one MPC call from a fixed continuous cart-pole
    state with a freshly initialised ensemble (the cost does not depend on
    the weights)."""
    env, params = envs.make("ContinuousCartPole")
    ens = Ensemble(ens_config)
    state = ens.init(jax.random.key(0))
    task = envs.task_functions(env)
    model = with_task(ensemble_model(ens, propagation), task.reward_fn, task.termination_fn)
    planner = make_planner(mpc, model, ActionSpec.from_space(env.action_space(params)))
    obs = jnp.array([0.0, 0.1, 0.02, -0.1])

    def plan(key):
        return planner.plan(state, key, obs, planner.init())[0].action

    return plan, state, obs


def planning_rate(population: int, horizon: int, quick: bool) -> dict:
    config = EnsembleConfig(obs_dim=4, action_dim=1, ensemble_size=5, hidden_size=200, num_layers=4)
    mpc = MPCConfig(
        method="cem",
        horizon=horizon,
        population=population,
        num_iterations=5,
        num_elites=population // 10,
        num_particles=20,
    )
    plan, state, obs = cartpole_plan_fn(config, mpc, "tsinf")
    evals = population * 20 * horizon * 5
    gflop = evals * mlp_flops(config) / 1e9
    # About 20 s of planning: the machine has slow spells of a few seconds
    # (the same work takes 1.3x the CPU time), which a median over this many
    # rounds steps over.
    rounds = 3 if quick else max(12, int(20 / (gflop / 320)))
    timing = paired_with_matmul(plan, jax.random.key(1), gflop, 512 if quick else 2048, rounds)
    row = {
        "population": population,
        "horizon": horizon,
        "iterations": 5,
        "particles": 20,
        "members": 5,
        "plan_compile_s": timing["compile_s"],
        "ms_per_action": 1e3 * timing["run_s"],
        "ms_per_action_median": 1e3 * timing["run_s_median"],
        "gflop_per_action": gflop,
        "gflops": gflop / timing["run_s"],
        "fraction_of_matmul_ceiling": timing["fraction_of_matmul_ceiling"],
        "fraction_best_vs_best": timing["fraction_best_vs_best"],
        "paired_matmul_gflops_median": timing["matmul_gflops_median"],
    }
    if not quick:
        keys = jax.random.split(jax.random.key(2), 64)
        # 64 planning calls, sharded over every device (one on a CPU).
        batched = compile_and_time_sharded(plan, keys, repeats=1, min_seconds=0.0)
        row["actions_per_s_64_envs"] = 64 / batched["run_s"]
        row["actions_per_s_64_envs_per_device"] = 64 / batched["run_s"] / batched["devices"]
    # Same CEM, same network, plain NumPy (one action).
    weights = []
    leaves = jax.tree.map(np.asarray, state.params["params"])
    for m in range(5):
        layers = [
            (leaves[f"Dense_{i}"]["kernel"][m], leaves[f"Dense_{i}"]["bias"][m])
            for i in range(config.num_layers + 1)
        ]
        weights.append(layers)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    numpy_cem_action(
        weights, np.asarray(obs), population, horizon, 20, 1 if quick else 5, population // 10, rng
    )
    numpy_s = (time.perf_counter() - start) * (5 if quick else 1)
    row["numpy_ms_per_action"] = 1e3 * numpy_s
    row["speedup_vs_numpy"] = numpy_s / timing["run_s"]
    return row


def default_planner_row(ceiling: float) -> dict:
    """Milliseconds and GFLOP per action of the planner PETS runs by default
    (its own ensemble size and depth), next to mbrl-lib's cart-pole settings."""
    config = pets.Config()
    env, params = envs.make("ContinuousCartPole")
    ens_config = config.model.for_env(env, params)
    mpc = config.planner
    plan, _, _ = cartpole_plan_fn(ens_config, mpc, config.propagation)
    timing = compile_and_time(plan, jax.random.key(1), repeats=3, min_seconds=0.5)
    gflop = mpc.population * mpc.num_particles * mpc.horizon * mpc.num_iterations
    gflop *= mlp_flops(ens_config) / 1e9
    reference = EnsembleConfig(obs_dim=4, action_dim=1, hidden_size=200, num_layers=4)
    return {
        "method": mpc.method,
        "population": mpc.population,
        "horizon": mpc.horizon,
        "iterations": mpc.num_iterations,
        "particles": mpc.num_particles,
        "members": ens_config.ensemble_size,
        "hidden_layers": ens_config.num_layers,
        "ms_per_action": 1e3 * timing["run_s"],
        "gflop_per_action": gflop,
        "fraction_of_matmul_ceiling": gflop / timing["run_s"] / ceiling,
        "mbrl_lib_settings_gflop_per_action": 350 * 20 * 15 * 5 * mlp_flops(reference) / 1e9,
    }


def time_to_solve() -> dict:
    env, params = envs.make("ContinuousCartPole")
    # Trial 1 is random; the run stops after the first MPC trial, which is the
    # one that solves it with the defaults (solved_at_trial says if not).
    config = pets.Config(num_trials=2)
    start = time.perf_counter()
    train = mbrl_jax.jit(pets.make_train(config, env, params))
    out = jax.block_until_ready(train(jax.random.key(0)))
    seconds = time.perf_counter() - start
    returns = np.asarray(out.trial_returns)
    solved = np.flatnonzero(returns >= 190)
    return {
        "trial_returns": returns.tolist(),
        "wall_s_including_compile": seconds,
        "solved_at_trial": int(solved[0]) + 1 if len(solved) else None,
        "note": "one compiled call runs both trials; the time covers compile and both",
    }


def main() -> None:
    parser = argument_parser(__doc__)
    args = parser.parse_args()
    ceiling = matmul_ceiling(512 if args.quick else 2048)
    print(f"matmul ceiling {ceiling:.0f} GFLOP/s", file=sys.stderr)
    results = {
        "benchmark": "pets",
        "quick": args.quick,
        "matmul_gflops": ceiling,
        "training": [training_rate(m, args.quick) for m in (5, 7)],
    }
    print(f"training {results['training']}", file=sys.stderr)
    shapes = [(64, 5)] if args.quick else [(350, 15), (500, 30)]
    results["planning"] = [planning_rate(p, h, args.quick) for p, h in shapes]
    print(f"planning {results['planning']}", file=sys.stderr)
    results["default_planner"] = default_planner_row(ceiling)
    print(f"default planner {results['default_planner']}", file=sys.stderr)
    results["time_to_solve"] = time_to_solve()
    emit(results, args.out)


if __name__ == "__main__":
    main()
