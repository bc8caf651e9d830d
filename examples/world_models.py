"""World Models on ``CartPole-v1``: a controller trained only in M's dreams, scored for real.

Trains :mod:`mbrl_jax.agents.world_models` with its default settings on 5
seeds (vmapped, one compiled program), then

* the real return of C (the CMA-ES mean) after each iteration, per seed;
* the gap between what M predicts for the final C and its real return, for
  dreams at temperatures ``tau`` in {0.5, 1.0, 1.5} (the same controller, the
  same world model, 16 dreams per seed).

Writes ``docs/world_models.json`` and ``docs/world_models.png``.

    python examples/world_models.py [--seeds 5] [--out docs/world_models]
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

from mbrl_jax import envs  # noqa: E402
from mbrl_jax.agents import world_models  # noqa: E402

TAUS = (0.5, 1.0, 1.5)
DREAMS = 16


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default="docs/world_models")
    args = parser.parse_args(argv)

    env, env_params = envs.make("CartPole-v1")
    config = world_models.Config()
    train = jax.jit(jax.vmap(world_models.make_train(config, env, env_params)))
    keys = jax.random.split(jax.random.key(0), args.seeds)
    start = time.perf_counter()
    compiled = train.lower(keys).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    out = jax.block_until_ready(compiled(keys))
    run_s = time.perf_counter() - start

    parts = world_models.make_parts(config, env, env_params)

    @jax.jit
    def dream_gap(wm, controller, key, tau):
        start_key, dream_key, real_key = jax.random.split(key, 3)
        starts = parts.reset_observations(start_key, DREAMS)
        one = jax.tree.map(lambda x: x[None], controller)
        dream = parts.dream_returns(wm, one, dream_key, starts, DREAMS, config.horizon, tau)[0]
        real = parts.real_returns(wm, controller, real_key, DREAMS).returns.mean()
        return dream, real

    gap = jax.vmap(dream_gap, in_axes=(0, 0, 0, None))
    gap_keys = jax.random.split(jax.random.key(1), args.seeds)
    per_tau = {}
    for tau in TAUS:
        dream, real = (np.asarray(x) for x in gap(out.world_model, out.controller, gap_keys, tau))
        per_tau[str(tau)] = {
            "dream_return": dream.tolist(),
            "real_return": real.tolist(),
            "mean_gap_dream_minus_real": float((dream - real).mean()),
        }

    eval_returns = np.asarray(out.eval_returns)  # [seeds, I, episodes]
    curve = eval_returns.mean(-1)
    steps = config.iteration_steps * (np.arange(config.num_iterations) + 1)
    result = {
        "env": "CartPole-v1",
        "config": {k: getattr(config, k) for k in config.__dataclass_fields__},
        "seeds": args.seeds,
        "real_steps_per_seed": int(steps[-1]),
        "compile_s": compile_s,
        "run_s": run_s,
        "iteration_steps": steps.tolist(),
        "real_return_per_iteration": curve.tolist(),
        "final_real_return_per_seed": curve[:, -1].tolist(),
        "final_real_return_mean": float(curve[:, -1].mean()),
        "dream_return_per_iteration": np.asarray(out.dream_return).tolist(),
        "best_dream_return_per_generation": np.asarray(out.best_fitness).tolist(),
        "dream_vs_real_per_tau": per_tau,
    }
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps(result, indent=1))

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for seed in range(args.seeds):
        left.plot(steps, curve[seed], "o-", alpha=0.6, label=f"seed {seed}")
    left.axhline(500, color="grey", ls=":")
    left.set(xlabel="real environment steps", ylabel="real return of C", title="CartPole-v1")
    left.legend(fontsize=7)
    width = 0.35
    x = np.arange(len(TAUS))
    dreams = [np.mean(per_tau[str(t)]["dream_return"]) for t in TAUS]
    reals = [np.mean(per_tau[str(t)]["real_return"]) for t in TAUS]
    right.bar(x - width / 2, dreams, width, label="dream (M predicts)")
    right.bar(x + width / 2, reals, width, label="real")
    right.set_xticks(x, [f"tau {t}" for t in TAUS])
    right.set(ylabel="return of the final C", title="dream vs real")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"), dpi=120)
    print(json.dumps({k: result[k] for k in ("final_real_return_per_seed", "compile_s", "run_s")}))
    for tau, row in per_tau.items():
        print(
            f"tau {tau}: dream {np.mean(row['dream_return']):.1f} real "
            f"{np.mean(row['real_return']):.1f}"
        )


if __name__ == "__main__":
    main()
