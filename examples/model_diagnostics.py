"""Model diagnostics on ContinuousCartPole and Pendulum-v1: the probabilistic
ensemble's calibration before and after a per-dimension variance
recalibration, and its k-step compounding error beside a single deterministic
MLP's, both fitted on the same random-policy data.

    python examples/model_diagnostics.py [--quick]

Writes ``docs/model_diagnostics.json`` and ``docs/model_diagnostics.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import jax
import numpy as np

from mbrl_jax import envs
from mbrl_jax.agents import pets
from mbrl_jax.core.replay import buffer_add, buffer_init
from mbrl_jax.core.types import Transition
from mbrl_jax.diagnostics import (
    calibration,
    compounding_error,
    fit_variance_scale,
    growth,
    windows,
)
from mbrl_jax.models.ensemble import Ensemble, ensemble_model

DOCS = Path(__file__).resolve().parent.parent / "docs"


def collect(key, env, params, num_steps: int):
    """Uniformly random actions; ``done`` is termination or truncation."""
    space = env.action_space(params)
    reset_key, loop_key = jax.random.split(key)
    obs, state = env.reset(reset_key, params)

    def step(carry, k):
        obs, state = carry
        action_key, env_key = jax.random.split(k)
        action = space.sample(action_key)
        nxt, state, reward, terminated, truncated, info = env.step(env_key, state, action, params)
        out = (obs, action, reward, info["final_observation"], terminated | truncated, terminated)
        return (nxt, state), out

    _, data = jax.lax.scan(step, (obs, state), jax.random.split(loop_key, num_steps))
    return data


def fit(key, ens: Ensemble, data, epochs: int):
    obs, action, reward, nxt, _, terminated = data
    batch = Transition(obs, action, reward, nxt, terminated)
    buffer = buffer_add(buffer_init(jax.tree.map(lambda x: x[0], batch), obs.shape[0]), batch)
    fit_fn = jax.jit(ens.fit, static_argnums=3)
    state, _ = fit_fn(key, ens.init(jax.random.fold_in(key, 1)), buffer, epochs)
    return state


def one_env(name: str, quick: bool) -> dict:
    env, params = envs.make(name)
    steps, held, epochs = (1500, 1200, 10) if quick else (4000, 3000, 50)
    train_data = collect(jax.random.key(0), env, params, steps)
    test_data = collect(jax.random.key(1), env, params, held)
    base = dataclasses.replace(
        pets.preset(name).model.for_env(env, params), learn_reward=True, learn_termination=False
    )
    ens = Ensemble(base)
    single = Ensemble(dataclasses.replace(base, ensemble_size=1, num_elites=1, probabilistic=False))
    start = time.perf_counter()
    ens_state = fit(jax.random.key(2), ens, train_data, epochs)
    single_state = fit(jax.random.key(3), single, train_data, epochs)
    fit_s = time.perf_counter() - start

    # One-step calibration on held-out data: the scale is fitted on one half,
    # the ECE measured on the other.
    obs, action, reward, nxt = (np.asarray(x) for x in test_data[:4])
    pred = jax.jit(ens.predict)(ens_state, obs, action)
    target = np.concatenate([nxt, reward[:, None]], axis=1)
    var = np.asarray(pred["aleatoric_var"]) + np.asarray(pred["epistemic_var"])
    mean = np.asarray(pred["mean"])
    half = obs.shape[0] // 2
    scale = fit_variance_scale(mean[:half], var[:half], target[:half])
    before = calibration(mean[half:], var[half:], target[half:])
    after = calibration(mean[half:], var[half:] * np.asarray(scale), target[half:])

    # k-step compounding error from held-out start states.
    k = 15
    data = windows(obs, action, reward, nxt, np.asarray(test_data[4]), k)
    run = jax.jit(compounding_error, static_argnums=(0, 4))
    ens_err = run(ensemble_model(ens, "ts1"), ens_state, jax.random.key(4), data, 8)
    one_err = run(ensemble_model(single, "ts1"), single_state, jax.random.key(5), data, 1)

    # Scaling: 10,000 start states in one jitted call, compile included.
    reps = -(-10_000 // data.actions.shape[0])
    big = jax.tree.map(lambda x: np.concatenate([x] * reps)[:10_000], data)
    timings = {}
    for n in (1_000, 10_000):
        sub = jax.tree.map(lambda x, n=n: x[:n], big)
        start = time.perf_counter()
        fresh = jax.jit(compounding_error, static_argnums=(0, 4))
        jax.block_until_ready(
            fresh(ensemble_model(ens, "ts1"), ens_state, jax.random.key(6), sub, 8)
        )
        timings[str(n)] = round(time.perf_counter() - start, 3)

    ens_curve = np.asarray(ens_err.mse_mean)
    one_curve = np.asarray(one_err.mse_mean)
    return {
        "env": name,
        "train_steps": steps,
        "held_out_steps": held,
        "epochs": epochs,
        "ensemble_size": base.ensemble_size,
        "fit_s": round(fit_s, 2),
        "calibration": {
            "levels": np.asarray(before.levels).round(3).tolist(),
            "coverage_before": np.asarray(before.coverage).mean(1).round(4).tolist(),
            "coverage_after": np.asarray(after.coverage).mean(1).round(4).tolist(),
            "ece_before_per_dim": np.asarray(before.ece).round(4).tolist(),
            "ece_after_per_dim": np.asarray(after.ece).round(4).tolist(),
            "ece_before": round(float(before.ece_mean), 4),
            "ece_after": round(float(after.ece_mean), 4),
            "variance_scale": np.asarray(scale).round(3).tolist(),
        },
        "compounding": {
            "windows": int(data.actions.shape[0]),
            "ensemble_mse": ens_curve.round(6).tolist(),
            "single_mlp_mse": one_curve.round(6).tolist(),
            "ratio_at_k15": round(float(one_curve[-1] / ens_curve[-1]), 3),
            "ensemble_growth": growth(ens_curve)._asdict(),
            "single_mlp_growth": growth(one_curve)._asdict(),
            "ensemble_nll": np.asarray(ens_err.nll).mean(1).round(3).tolist(),
        },
        "seconds_compounding_error_incl_compile": timings,
    }


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(results), figsize=(5 * len(results), 8), squeeze=False)
    for col, r in enumerate(results):
        c = r["compounding"]
        k = np.arange(1, len(c["ensemble_mse"]) + 1)
        ax = axes[0, col]
        label = f"ensemble ({r['ensemble_size']} x Gaussian, TS1, 8 samples)"
        ax.semilogy(k, c["ensemble_mse"], "o-", label=label)
        ax.semilogy(k, c["single_mlp_mse"], "s-", label="single deterministic MLP")
        ax.set(title=f"{r['env']}: open-loop error", xlabel="k (steps)", ylabel="state MSE")
        ax.legend(fontsize=8)
        cal = r["calibration"]
        ax = axes[1, col]
        ax.plot([0, 1], [0, 1], "k:", label="calibrated")
        ax.plot(cal["levels"], cal["coverage_before"], "o-", label=f"ECE {cal['ece_before']:.3f}")
        ax.plot(
            cal["levels"], cal["coverage_after"], "s-", label=f"rescaled {cal['ece_after']:.3f}"
        )
        ax.set(title="reliability (held-out)", xlabel="nominal level", ylabel="coverage")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small data and few epochs")
    args = parser.parse_args()
    results = [one_env(name, args.quick) for name in ("ContinuousCartPole", "Pendulum-v1")]
    for r in results:
        print(
            r["env"],
            "ECE",
            r["calibration"]["ece_before"],
            "->",
            r["calibration"]["ece_after"],
            "| k=15 MSE single/ensemble",
            r["compounding"]["ratio_at_k15"],
            "| 10k starts",
            r["seconds_compounding_error_incl_compile"],
            flush=True,
        )
    if not args.quick:
        DOCS.mkdir(exist_ok=True)
        (DOCS / "model_diagnostics.json").write_text(json.dumps(results, indent=1))
        plot(results, DOCS / "model_diagnostics.png")


if __name__ == "__main__":
    main()
