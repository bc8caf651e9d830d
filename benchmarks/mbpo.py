"""MBPO throughput beside the machine's matmul ceiling, measured in the same run.

Prints JSON:
- the practical matmul ceiling (a large ``jnp.dot``, GFLOP/s);
- SAC gradient steps per second at batch 256 with 256 x 2 MLPs (actor and
  twin critics), and the GFLOP/s that reaches as a fraction of the ceiling
  (timed alternately with the matmul, median of the per-round ratios);
- model rollouts generated per second (start states x steps, through the 5
  elites of MBPO's 7 x 4 x 200 ensemble, with the SAC policy acting), and
  their fraction of the ceiling;
- the whole MBPO loop (one block: a model fit, the rollouts and 250 real steps
  at UTD 20) in real environment steps per second, vmapped over 1 and 8 seeds;
- the compile time of a whole MBPO run (``make_train``, jitted).

FLOP counts: a dense layer is 2 x inputs x outputs per item forward; a
backward pass is counted as twice its forward pass.

    python benchmarks/mbpo.py [--quick] [--out benchmarks/results/mbpo_cpu.json]
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from common import argument_parser, compile_and_time, emit  # noqa: E402
from pets import matmul_ceiling, paired_with_matmul  # noqa: E402

import mbrl_jax  # noqa: E402
from mbrl_jax import envs  # noqa: E402
from mbrl_jax.agents import mbpo, sac  # noqa: E402
from mbrl_jax.core.types import Transition  # noqa: E402
from mbrl_jax.models.ensemble import Ensemble  # noqa: E402


def mlp_gflop(sizes: list[int]) -> float:
    return sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True)) / 1e9


def sac_rate(config: sac.Config, obs_dim: int, action_dim: int, updates: int, size: int) -> dict:
    hidden = list(config.hidden_sizes)
    actor = mlp_gflop([obs_dim, *hidden, 2 * action_dim])
    critic = mlp_gflop([obs_dim + action_dim, *hidden, 1])
    b = config.batch_size
    # Critic step: 2 critics forward + backward, the actor and 2 target critics
    # forward on the next states; actor step: actor forward + backward, 2
    # critics forward + backward through the action.
    per_update = b * (2 * critic * 3 + actor + 2 * critic + actor * 3 + 2 * critic * 3)
    state = sac.init_sac(config, jax.random.key(0), obs_dim, action_dim, -2.0, 2.0)
    k = jax.random.split(jax.random.key(1), 4)
    batch = Transition(
        jax.random.normal(k[0], (b, obs_dim)),
        jax.random.uniform(k[1], (b, action_dim), minval=-2.0, maxval=2.0),
        jax.random.normal(k[2], (b,)),
        jax.random.normal(k[3], (b, obs_dim)),
        jnp.zeros(b, bool),
    )

    def run(key):
        def one(s, kk):
            return sac.update(config, s, kk, batch)[0], None

        return jax.lax.scan(one, state, jax.random.split(key, updates))[0].log_alpha

    timing = paired_with_matmul(run, jax.random.key(2), per_update * updates, size, rounds=5)
    return {
        "batch": b,
        "hidden": hidden,
        "updates_per_call": updates,
        "updates_per_s": updates / timing["run_s"],
        "gflop_per_update": per_update,
        "gflops": per_update * updates / timing["run_s"],
        "fraction_of_matmul_ceiling": timing["fraction_of_matmul_ceiling"],
        "compile_s": timing["compile_s"],
    }


def rollout_rate(config: mbpo.Config, env, params, starts: int, k: int, size: int) -> dict:
    model_config = dataclasses.replace(
        config.model.for_env(env, params), learn_reward=True, learn_termination=True
    )
    elites = Ensemble(
        dataclasses.replace(
            model_config, ensemble_size=model_config.num_elites, num_elites=model_config.num_elites
        )
    )
    obs_dim, action_dim = model_config.obs_dim, model_config.action_dim
    model_state = elites.init(jax.random.key(0))
    agent = sac.init_sac(config.sac, jax.random.key(1), obs_dim, action_dim, -2.0, 2.0)
    member = (
        mlp_gflop([model_config.input_dim] + [model_config.hidden_size] * model_config.num_layers)
        + 3 * 2 * model_config.hidden_size * model_config.output_dim / 1e9
    )
    actor = mlp_gflop([obs_dim, *config.sac.hidden_sizes, 2 * action_dim])
    gflop = starts * k * (member + actor)
    obs0 = jax.random.normal(jax.random.key(2), (starts, obs_dim))

    def run(key):
        def one(obs, kk):
            a_key, m_key = jax.random.split(kk)
            action = sac.act(config.sac, agent, a_key, obs)
            nxt, reward, term = elites.step_particles(model_state, m_key, obs, action, "ts1")
            return nxt, reward.sum() + term.sum()

        return jax.lax.scan(one, obs0, jax.random.split(key, k))[1].sum()

    timing = paired_with_matmul(run, jax.random.key(3), gflop, size, rounds=5)
    return {
        "start_states": starts,
        "steps": k,
        "transitions_per_s": starts * k / timing["run_s"],
        "gflops": gflop / timing["run_s"],
        "fraction_of_matmul_ceiling": timing["fraction_of_matmul_ceiling"],
        "compile_s": timing["compile_s"],
    }


def loop_rate(config: mbpo.Config, env, params, seeds: int) -> dict:
    chunked = mbpo.make_chunked(config, env, params)
    keys = jax.random.split(jax.random.key(0), seeds)
    state = jax.jit(jax.vmap(chunked.init))(keys)
    unit = jax.vmap(chunked.unit)
    timing = compile_and_time(unit, state, repeats=2, min_seconds=0.0)
    steps = chunked.unit_steps * seeds
    return {
        "seeds": seeds,
        "block_steps": chunked.unit_steps,
        "env_steps_per_s": steps / timing["run_s"],
        "block_s": timing["run_s"],
        "compile_s": timing["compile_s"],
    }


def main() -> None:
    parser = argument_parser(__doc__)
    args = parser.parse_args()
    env, params = envs.make("Pendulum-v1")
    size = 512 if args.quick else 2048
    ceiling = matmul_ceiling(size)
    print(f"matmul ceiling {ceiling:.0f} GFLOP/s", file=sys.stderr)
    config = mbpo.Config()
    if args.quick:
        config = dataclasses.replace(
            config,
            num_steps=300,
            learning_starts=100,
            model_train_freq=50,
            epoch_length=100,
            rollout_batch_size=256,
            model_epochs=2,
            updates_per_step=2,
        )
    results = {"matmul_gflops": ceiling}
    results["sac_updates"] = sac_rate(config.sac, 3, 1, 20 if args.quick else 200, size)
    print(f"sac {results['sac_updates']['updates_per_s']:.0f} updates/s", file=sys.stderr)
    results["model_rollouts"] = rollout_rate(
        config, env, params, 256 if args.quick else config.rollout_batch_size, 5, size
    )
    results["mbpo_loop"] = [
        loop_rate(config, env, params, seeds) for seeds in ((1,) if args.quick else (1, 8))
    ]
    start = time.perf_counter()
    mbrl_jax.jit(mbpo.make_train(config, env, params)).lower(jax.random.key(0)).compile()
    results["mbpo_compile_s"] = time.perf_counter() - start
    results["config"] = {
        "num_steps": config.num_steps,
        "updates_per_step": config.updates_per_step,
        "rollout_batch_size": config.rollout_batch_size,
        "model_train_freq": config.model_train_freq,
        "ensemble": [config.model.ensemble_size, config.model.num_elites],
    }
    emit(results, args.out)


if __name__ == "__main__":
    main()
