"""Policy search in learned models: gradient MPC vs iCEM, and CMA-ES in World Models' dream.

Prints JSON, beside the machine's matmul ceiling measured in the same run:
- planning with PETS's ensemble (5 x 3 x 200, Pendulum-v1, horizon 25): iCEM
  (PETS's default), gradient MPC and CEM-then-gradient, each as one jitted
  plan call: milliseconds per action, model rollouts per action (forward
  passes), GFLOP per action (a backward pass counted as two forward passes)
  and the fraction of the matmul ceiling (timed alternately with the matmul,
  the median of the per-round ratios); compile time of each. Returns at these
  settings are measured by ``examples/gradient_mpc.py``
  (``docs/gradient_mpc.json``), where the planners act in the same learned
  ensemble;
- World Models: CMA-ES candidate evaluations in the dream, population 64 x 16
  rollouts x 1,000 steps of the MDN-RNN with the linear controller acting:
  candidates per second, dream steps per second, GFLOP/s and its fraction of
  the ceiling, compile time.

    python benchmarks/policy_search.py [--quick] [--out benchmarks/results/policy_search_cpu.json]
"""

from __future__ import annotations

import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from common import argument_parser, emit  # noqa: E402
from pets import matmul_ceiling, mlp_flops, paired_with_matmul  # noqa: E402

from mbrl_jax import envs  # noqa: E402
from mbrl_jax.agents import pets, world_models  # noqa: E402
from mbrl_jax.models import mdn_rnn  # noqa: E402


def planning_rate(name: str, quick: bool, size: int) -> dict:
    env, params = envs.make("Pendulum-v1")
    config = pets.preset("Pendulum-v1", name)
    if quick:
        planner = config.planner
        planner = (
            dataclasses.replace(planner, num_iterations=2, population=20, num_elites=4)
            if name == "shooting"
            else dataclasses.replace(planner, num_iterations=2, cem_population=10, cem_elites=4)
        )
        config = dataclasses.replace(config, planner=planner)
    ensemble, planner, _ = pets.make_mpc(config, env, params)
    ens_state = ensemble.init(jax.random.key(0))
    obs = jnp.array([-1.0, 0.0, 0.0])
    p = config.planner
    if name == "shooting":
        rollouts, backward = p.population * p.num_iterations * p.num_particles, 0
    else:
        backward = p.num_sequences * p.num_particles * p.num_iterations
        rollouts = p.rollouts_per_action()
    per_step = mlp_flops(ensemble.config) / 1e9
    gflop = per_step * p.horizon * (rollouts + 2 * backward)

    def plan(key):
        return planner.plan(ens_state, key, obs, planner.init())[0].action

    timing = paired_with_matmul(plan, jax.random.key(1), gflop, size, rounds=5)
    return {
        "planner": name,
        "method": p.method,
        "horizon": p.horizon,
        "rollouts_per_action": rollouts,
        "ms_per_action": 1000 * timing["run_s"],
        "ms_per_action_median": 1000 * timing["run_s_median"],
        "gflop_per_action": gflop,
        "fraction_of_matmul_ceiling": timing["fraction_of_matmul_ceiling"],
        "compile_s": timing["compile_s"],
    }


def dream_rate(quick: bool, size: int) -> dict:
    """CMA-ES candidates scored in the dream: ``population x rollouts x horizon`` M steps."""
    env, params = envs.make("CartPole-v1")
    population, rollouts, horizon = (8, 4, 100) if quick else (64, 16, 1000)
    config = world_models.Config(population=population, num_rollouts=rollouts, horizon=horizon)
    parts = world_models.make_parts(config, env, params)
    vae_key, mdn_key, c_key, start_key = jax.random.split(jax.random.key(0), 4)
    wm = world_models.WorldModelParams(
        parts.vae.init(vae_key), mdn_rnn.mdn_rnn_init(parts.mdn_config, mdn_key)
    )
    example = parts.controller_init()
    controllers = jax.tree.map(
        lambda x: 0.1 * jax.random.normal(c_key, (population, *x.shape)), example
    )
    starts = parts.reset_observations(start_key, 64)
    m = parts.mdn_config
    lstm = 2 * 4 * m.hidden_size * (m.latent_size + m.action_size + m.hidden_size)
    heads = 2 * m.hidden_size * (m.num_mixtures * (1 + 2 * m.latent_size) + 2)
    controller = 2 * (m.latent_size + m.hidden_size) * m.action_size
    steps = population * rollouts * horizon
    gflop = steps * (lstm + heads + controller) / 1e9

    def evaluate(key):
        return parts.dream_returns(wm, controllers, key, starts, rollouts, horizon, config.tau)

    timing = paired_with_matmul(evaluate, jax.random.key(1), gflop, size, rounds=3)
    return {
        "population": population,
        "rollouts_per_candidate": rollouts,
        "horizon": horizon,
        "candidates_per_s": population / timing["run_s"],
        "dream_steps_per_s": steps / timing["run_s"],
        "generation_s": timing["run_s"],
        "gflop_per_generation": gflop,
        "fraction_of_matmul_ceiling": timing["fraction_of_matmul_ceiling"],
        "compile_s": timing["compile_s"],
    }


def main() -> None:
    parser = argument_parser(__doc__)
    args = parser.parse_args()
    size = 512 if args.quick else 2048
    ceiling = matmul_ceiling(size)
    print(f"matmul ceiling {ceiling:.0f} GFLOP/s", file=sys.stderr)
    results = {"matmul_gflops": ceiling, "planning": []}
    for name in pets.PLANNER_CHOICES:
        row = planning_rate(name, args.quick, size)
        print(f"{name}: {row['ms_per_action']:.1f} ms/action", file=sys.stderr)
        results["planning"].append(row)
    shoot = results["planning"][0]
    for row in results["planning"][1:]:
        row["rollouts_vs_shooting"] = row["rollouts_per_action"] / shoot["rollouts_per_action"]
        row["time_vs_shooting"] = row["ms_per_action"] / shoot["ms_per_action"]
    results["world_models_dream"] = dream_rate(args.quick, size)
    dream = results["world_models_dream"]
    print(f"dream: {dream['candidates_per_s']:.1f} candidates/s", file=sys.stderr)
    emit(results, args.out)


if __name__ == "__main__":
    main()
