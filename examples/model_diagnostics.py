"""Model diagnostics on PETS's own data, on ContinuousCartPole and Pendulum-v1:
the bootstrap ensemble, MC dropout, a mean-field Bayesian MLP and a single
deterministic MLP, fitted on the same trials, compared on one-step error
(the policy's held-out trials and random data), calibration before and after
a per-dimension variance recalibration, k-step compounding error, K-fold
cross-validation, the planner's exploitation gap against horizon and beta,
and PETS's returns with each uncertainty model.

    python examples/model_diagnostics.py [--quick]

Writes ``docs/model_diagnostics.json`` (a summary) and, per environment, the
full ``mbrl-jax diagnose`` report under ``docs/diagnose/<env>/`` (JSON, PNGs,
``index.html``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mbrl_jax.experiments.diagnose import DiagnoseOptions, diagnose

DOCS = Path(__file__).resolve().parent.parent / "docs"

SETTINGS = {
    # 6 trials: 1 random, 3 MPC trials train the models, the last 2 are held out.
    "ContinuousCartPole": dict(trials=6, held_out_trials=2, horizons=(5, 10, 15, 25)),
    # Pendulum: the swing-up needs a few MPC trials before the data covers it.
    "Pendulum-v1": dict(trials=7, held_out_trials=2, horizons=(5, 10, 25, 40)),
}


def summary(report: dict) -> dict:
    models = {
        name: {
            "one_step_mse_policy": e["one_step_mse_policy"],
            "one_step_mse_random": e["one_step_mse_random"],
            "ece_before": (e.get("calibration") or {}).get("ece_before"),
            "ece_after": (e.get("calibration") or {}).get("ece_after"),
            "ece_after_likelihood_scale": (e.get("calibration") or {}).get(
                "ece_after_likelihood_scale"
            ),
            "ece_after_quantile": (e.get("calibration") or {}).get("ece_after_quantile"),
            "epistemic_share": (e.get("calibration") or {}).get("epistemic_share"),
            "compounding_mse_at_k": e["compounding_mse"][-1],
            "compounding_mean_mse_at_k": e["compounding_mean_mse"][-1],
            "compounding_expectation_mse_at_k": (e.get("compounding_expectation_mse") or [None])[
                -1
            ],
            "growth": (e.get("compounding_growth") or {}).get("kind"),
            "fit_s": e["fit_s"],
        }
        for name, e in report["models"].items()
    }
    return {
        "env": report["env"],
        "options": report["options"],
        "models": models,
        "single_over_ensemble_at_k": report.get("single_over_ensemble_at_k"),
        "cross_validation": report["cross_validation"],
        "exploitation_gap": report["exploitation_gap"],
        "pets_returns": report["pets_returns"],
        "compounding_seconds_incl_compile": report["compounding_seconds_incl_compile"],
        "windows": report["windows"],
        "seconds": report["seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings, nothing written")
    args = parser.parse_args()
    results = []
    for env, settings in SETTINGS.items():
        if args.quick:
            settings = dict(
                trials=3, held_out_trials=1, horizons=(3,), betas=(0.0,), k=3, epochs=2,
                trial_length=20, random_steps=100, folds=2, timing_starts=50,
            )  # fmt: skip
        out = None if args.quick else DOCS / "diagnose" / env
        report = diagnose(DiagnoseOptions(env=env, **settings), out)
        results.append(summary(report))
        print(json.dumps(results[-1]["models"], indent=1), flush=True)
    if not args.quick:
        (DOCS / "model_diagnostics.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
