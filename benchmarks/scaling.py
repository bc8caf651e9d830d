"""Scaling over devices: seeds sharded with ``jax.sharding`` at 1, 2, 4, 8 devices.

Prints JSON: for Dyna-Q (1024 seeds per device, environment steps per
second), PETS planning (MPC calls per second, 8 per device) and MuZero
self-play (a small config, 2 seeds per device), the total and per-device
throughput at each device count, and at one device the sharded call against
plain ``jit(vmap(train))`` (the overhead of sharding).

On a CPU, ``--fake-devices 8`` splits the host into 8 XLA devices (they share
its cores, so there the figures that matter are correctness and the
overhead, not speed-up); on a GPU/TPU machine the real devices are used.

    python benchmarks/scaling.py [--quick] [--fake-devices 8] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import sys

if __name__ == "__main__":
    _pre = argparse.ArgumentParser(add_help=False)
    _pre.add_argument("--fake-devices", type=int, default=0)
    _known, _ = _pre.parse_known_args()
    if _known.fake_devices:
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "")
            + f" --xla_force_host_platform_device_count={_known.fake_devices}"
        )

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from common import argument_parser, emit  # noqa: E402

import mbrl_jax  # noqa: E402
from mbrl_jax import envs, models  # noqa: E402
from mbrl_jax.agents import dyna_q, muzero  # noqa: E402
from mbrl_jax.core.sharding import device_mesh, make_sharded  # noqa: E402
from mbrl_jax.planners.search import SearchConfig  # noqa: E402
from mbrl_jax.planners.shooting import ActionSpec, MPCConfig, make_planner  # noqa: E402


def best_time(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return min(times)


def interleaved_best(first, second, *args, repeats: int) -> tuple[float, float]:
    """Best times of two functions called alternately, so drift hits both alike."""
    jax.block_until_ready(first(*args))
    jax.block_until_ready(second(*args))
    a, b = [], []
    for _ in range(repeats):
        for fn, times in ((first, a), (second, b)):
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times.append(time.perf_counter() - start)
    return min(a), min(b)


def workloads(quick: bool) -> dict:
    env, params = envs.make("DynaMaze")
    steps = 100 if quick else 500
    dyna = dyna_q.make_train(dyna_q.Config(num_steps=steps, planning_steps=5), env, params)

    cart, cart_params = envs.make("ContinuousCartPole")
    ensemble = models.Ensemble(models.EnsembleConfig(num_layers=3).for_env(cart, cart_params))
    ens_state = ensemble.init(jax.random.key(0))
    task = envs.task_functions(cart)
    model = models.with_task(models.ensemble_model(ensemble), task.reward_fn, task.termination_fn)
    planner = make_planner(
        MPCConfig(method="icem", population=100, num_elites=10, num_iterations=3, num_particles=5),
        model,
        ActionSpec.from_space(cart.action_space(cart_params)),
    )
    obs = jnp.array([0.0, 0.1, 0.02, -0.1])

    def plan(key):
        return planner.plan(ens_state, key, obs, planner.init())[0].action

    small = muzero.Config(
        num_iterations=2 if quick else 4,
        num_envs=8,
        unroll_length=16,
        search=SearchConfig(num_simulations=8, discount=0.99),
        latent_size=32,
        hidden=(32,),
        buffer_size=128,
        batch_size=32,
        updates_per_iteration=4,
        eval_envs=2,
        eval_steps=20,
    )
    mz_env, mz_params = envs.make("CartPole-v1")
    mz = muzero.make_train(small, mz_env, mz_params)
    return {
        "dyna_q": (dyna, 256 if quick else 1024, steps, "env_steps_per_s"),
        "pets_planning": (plan, 8, 1, "actions_per_s"),
        "muzero_self_play": (
            mz,
            2,
            small.num_iterations * small.unroll_length * 8,
            "env_steps_per_s",
        ),
    }


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--fake-devices", type=int, default=0)
    args = parser.parse_args()
    available = jax.device_count()
    counts = [d for d in (1, 2, 4, 8) if d <= available]
    repeats = 2 if args.quick else 5
    results = {
        "benchmark": "scaling",
        "quick": args.quick,
        "fake_cpu_devices": args.fake_devices,
        "devices_available": available,
        "rows": [],
    }
    for name, (train, per_device, units, unit_name) in workloads(args.quick).items():
        for d in counts:
            n = per_device * d
            keys = jax.random.split(jax.random.key(0), n)
            run = make_sharded(train, device_mesh(d))
            seconds = best_time(run, keys, repeats=repeats)
            extra = {}
            if d == 1:
                sharded_s, plain = interleaved_best(
                    run, mbrl_jax.jit(jax.vmap(train)), keys, repeats=3 * repeats + 1
                )
                seconds = min(seconds, sharded_s)
                extra = {"unsharded_seconds": plain, "sharding_overhead": sharded_s / plain - 1.0}
            row = {
                "workload": name,
                "devices": d,
                "batch": n,
                unit_name: n * units / seconds,
                f"{unit_name}_per_device": n * units / seconds / d,
                "seconds": seconds,
                **extra,
            }
            results["rows"].append(row)
            print(name, d, f"{row[unit_name]:.4g} {unit_name}", file=sys.stderr, flush=True)
    emit(results, args.out)


if __name__ == "__main__":
    main()
