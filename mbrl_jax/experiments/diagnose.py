"""``mbrl-jax diagnose``: a learned model's report card on PETS's own data.

PETS runs for ``trials`` trials; the last ``held_out_trials`` of them are
held out (the current policy's state distribution), the rest train the
models, and a batch of random-policy steps is the other held-out set. The
report (one JSON, PNGs and an HTML page that puts them together) has, for the
chosen model (and, with ``compare_models``, for the bootstrap ensemble, MC
dropout, the Bayesian MLP and a single deterministic MLP fitted on the same
data):

* one-step error on the policy's data and on random data (policy-aware
  validation) and K-fold cross-validation of the fit;
* calibration on the policy's held-out data, before and after a
  per-dimension variance recalibration fitted on half of it;
* the k-step compounding error and its growth, its cost over many start
  states, and predicted-vs-real trajectories from a few start states;
* the exploitation gap of the planner (CEM/iCEM through the model) as a
  function of the horizon and of ``beta``, and with the worst-member objective;
* with ``compare_models``, PETS's returns with each uncertainty model.
"""

from __future__ import annotations

import dataclasses
import html
import json
import time
from pathlib import Path

import numpy as np

from mbrl_jax.core.validation import check_choice, check_range

__all__ = ["DiagnoseOptions", "diagnose"]

MODEL_KINDS = ("bootstrap", "dropout", "bayesian")


@dataclasses.dataclass(frozen=True)
class DiagnoseOptions:
    """Settings of :func:`diagnose` (validated on construction).

    Attributes:
      env: a vector-observation environment PETS has a preset for.
      trials: PETS trials in all (the first ``random_trials`` random), ``>= 3``.
      held_out_trials: last trials held out, in ``[1, trials - 2]``.
      uncertainty: the model diagnosed (``"bootstrap"``, ``"dropout"``, ``"bayesian"``).
      compare_models: also fit the other kinds and a single deterministic MLP
        on the same data, and run PETS with each kind.
      k: steps of the compounding-error curve, ``>= 3``.
      horizons: planning horizons of the exploitation gap (``beta = 0``).
      betas: ``beta`` values of the exploitation gap (the preset's horizon).
      gap_episodes: MPC episodes per exploitation-gap setting (the same
        start states for every setting), ``>= 1``.
      random_steps: random-policy held-out steps, ``>= 100``.
      folds: cross-validation folds, ``>= 2``.
      timing_starts: start states of the timed compounding-error call.
      epochs: model training epochs (``None``: the PETS preset's).
      trial_length: steps per trial (``None``: the PETS preset's).
      seed: PRNG seed.
    """

    env: str = "ContinuousCartPole"
    trials: int = 6
    held_out_trials: int = 2
    uncertainty: str = "bootstrap"
    compare_models: bool = True
    k: int = 15
    horizons: tuple[int, ...] = (5, 10, 15, 25)
    betas: tuple[float, ...] = (0.0, 1.0, 2.0)
    gap_episodes: int = 4
    random_steps: int = 2000
    folds: int = 5
    timing_starts: int = 10_000
    epochs: int | None = None
    trial_length: int | None = None
    seed: int = 0

    def __post_init__(self):
        check_range(self, "trials", low=3, high=1000)
        check_range(self, "held_out_trials", low=1, high=self.trials - 2)
        check_choice(self, "uncertainty", MODEL_KINDS)
        check_range(self, "k", low=3, high=1000)
        check_range(self, "random_steps", low=100, high=10**7)
        check_range(self, "folds", low=2, high=100)
        check_range(self, "gap_episodes", low=1, high=1000)
        check_range(self, "timing_starts", low=1, high=10**7)
        check_range(self, "seed", low=0)
        if self.epochs is not None:
            check_range(self, "epochs", low=1, high=10_000)
        if self.trial_length is not None:
            check_range(self, "trial_length", low=self.k, high=100_000)
        if not self.horizons or any(
            isinstance(h, bool) or not isinstance(h, int) or not 1 <= h <= 1000
            for h in self.horizons
        ):
            raise ValueError(
                f"DiagnoseOptions.horizons must be integers in [1, 1000], got {self.horizons}"
            )
        if not self.betas or any(
            not isinstance(b, int | float) or not np.isfinite(b) for b in self.betas
        ):
            raise ValueError(f"DiagnoseOptions.betas must be finite numbers, got {self.betas}")


def _rows(data, start: int, stop: int):
    import jax

    return jax.tree.map(lambda x: np.asarray(x)[start:stop], data)


def diagnose(options: DiagnoseOptions, out: Path | None = None, log=print) -> dict:
    """Runs the report (see the module doc); writes ``diagnose.json``, the
    PNGs and ``index.html`` into ``out`` when given. Returns the JSON dict.

    Raises:
      ValueError: an environment without a vector observation or a PETS
        preset, or a trial too short for ``k`` steps.
    """
    import jax
    import jax.numpy as jnp

    from mbrl_jax import envs
    from mbrl_jax.agents import pets
    from mbrl_jax.core.chunked import run_units
    from mbrl_jax.core.types import Transition
    from mbrl_jax.diagnostics import (
        calibration,
        compounding_error,
        cross_validate,
        exploitation_gap,
        fit_variance_scale,
        growth,
        one_step_error,
        pit,
        pit_calibration,
        predictive,
        recalibrate_pit,
        windows,
    )
    from mbrl_jax.envs.tasks import TaskFunctions
    from mbrl_jax.models.ensemble import ensemble_model, make_ensemble
    from mbrl_jax.models.wrappers import with_task
    from mbrl_jax.planners.shooting import ActionSpec, make_planner

    o = options
    env, env_params = envs.make(o.env)
    base = dataclasses.replace(pets.preset(o.env), num_trials=o.trials)
    if o.epochs is not None:
        base = dataclasses.replace(base, num_epochs=o.epochs)
    if o.trial_length is not None:
        base = dataclasses.replace(base, trial_length=o.trial_length)
    num_mpc = base.num_trials - base.random_trials
    if o.held_out_trials > num_mpc - 1:
        raise ValueError(
            f"DiagnoseOptions.held_out_trials ({o.held_out_trials}) must leave at least one "
            f"MPC trial for training ({num_mpc} MPC trials of {base.num_trials})"
        )
    if o.k > base.trial_length:
        raise ValueError(
            f"DiagnoseOptions.k ({o.k}) must be at most the trial length ({base.trial_length})"
        )
    task = envs.task_functions(env) or TaskFunctions()
    key = jax.random.key(o.seed)
    keys = jax.random.split(key, 8)
    pets_key, random_key, fit_key, init_key, roll_key, gap_key, cv_key, reset_key = keys
    report: dict = {"env": o.env, "options": dataclasses.asdict(o)}
    t0 = time.perf_counter()

    def run_pets(kind: str):
        config = dataclasses.replace(base, model=dataclasses.replace(base.model, uncertainty=kind))
        chunked = pets.make_chunked(config, env, env_params)
        state = jax.jit(chunked.init)(pets_key)
        state, outs = jax.jit(run_units(chunked, chunked.num_units))(state)
        return config, state, outs

    log(f"[diagnose] {o.env}: PETS, {o.trials} trials ({o.uncertainty})")
    config, state, outs = run_pets(o.uncertainty)
    steps = config.trial_length
    mpc_returns = np.asarray(outs[0]).sum(-1)
    mpc_lengths = np.asarray(outs[1])
    random_returns = np.asarray(state.random_out[0]).sum(-1)
    report["pets_returns"] = {o.uncertainty: [*random_returns.tolist(), *mpc_returns.tolist()]}
    # Buffer rows: the random trials (every step), then each MPC trial's episode.
    size = int(state.buffer.size)
    held_lengths = mpc_lengths[-o.held_out_trials :]
    split = size - int(held_lengths.sum())
    train_buffer = state.buffer.replace(size=jnp.int32(split))
    held = _rows(state.buffer.data, split, size)
    trial_end = np.zeros(size - split, bool)
    trial_end[np.cumsum(held_lengths) - 1] = True

    # Random-policy held-out data.
    space = env.action_space(env_params)

    def random_step(carry, k):
        obs, env_state = carry
        ak, ek = jax.random.split(k)
        action = space.sample(ak)
        nxt, env_state, r, term, trunc, info = env.step(ek, env_state, action, env_params)
        return (nxt, env_state), Transition(obs, action, r, info["final_observation"], term)

    obs0, s0 = env.reset(reset_key, env_params)
    random_data = jax.jit(
        lambda k: jax.lax.scan(random_step, (obs0, s0), jax.random.split(k, o.random_steps))[1]
    )(random_key)
    random_data = jax.tree.map(np.asarray, random_data)

    # The models learn the reward (its error is part of the report) and,
    # as PETS's do, the termination where no known function gives it.
    ens_config = dataclasses.replace(
        base.model.for_env(env, env_params),
        learn_reward=True,
        learn_termination=task.termination_fn is None,
    )
    kinds = list(MODEL_KINDS) if o.compare_models else [o.uncertainty]
    variants = {kind: dataclasses.replace(ens_config, uncertainty=kind) for kind in kinds}
    if o.compare_models:
        variants["single_mlp"] = dataclasses.replace(
            ens_config, ensemble_size=1, num_elites=1, probabilistic=False
        )

    k = o.k
    if int(held_lengths.max()) < k:
        raise ValueError(
            f"DiagnoseOptions.k ({k}) is longer than every held-out trial "
            f"(lengths {held_lengths.tolist()})"
        )
    win = windows(
        held.state, held.action, held.reward, held.next_state, trial_end | np.asarray(held.done), k
    )
    models, states = {}, {}
    report["models"] = {}
    for name, cfg in variants.items():
        log(f"[diagnose] fitting {name}")
        ens = make_ensemble(cfg)
        start = time.perf_counter()
        ens_state, info = jax.jit(ens.fit, static_argnums=3)(
            fit_key, ens.init(init_key), train_buffer, base.num_epochs
        )
        jax.block_until_ready(ens_state)
        fit_s = time.perf_counter() - start
        models[name], states[name] = ens, ens_state
        entry = {"fit_s": round(fit_s, 2), "train_transitions": split}
        for label, data in (("policy", held), ("random", random_data)):
            err = one_step_error(ens, ens_state, data)
            entry[f"one_step_mse_{label}"] = round(float(err.mse_mean), 7)
        entry["policy_over_random_mse"] = round(
            entry["one_step_mse_policy"] / max(entry["one_step_mse_random"], 1e-12), 3
        )
        if cfg.probabilistic:
            pred = jax.jit(ens.predict)(ens_state, held.state, held.action)
            mean, var, tgt = (np.asarray(x) for x in predictive(ens, ens_state, held))
            # The scale is fitted on the first held-out trial(s), the ECE
            # measured on the others (with one held-out trial: every other
            # step, which flatters the recalibration: neighbours correlate).
            if o.held_out_trials >= 2:
                cut = int(held_lengths[: o.held_out_trials // 2].sum())
                fit_rows, test_rows = slice(0, cut), slice(cut, None)
            else:
                fit_rows, test_rows = slice(0, None, 2), slice(1, None, 2)
            fitted = {
                method: np.asarray(
                    fit_variance_scale(mean[fit_rows], var[fit_rows], tgt[fit_rows], method)
                )
                for method in ("likelihood", "calibration")
            }
            scale = fitted["calibration"]
            before = calibration(mean[test_rows], var[test_rows], tgt[test_rows])
            after = calibration(mean[test_rows], var[test_rows] * scale, tgt[test_rows])
            after_ml = calibration(
                mean[test_rows], var[test_rows] * fitted["likelihood"], tgt[test_rows]
            )
            # Quantile recalibration: the fit rows' PIT values relabel the quantiles.
            u = pit(mean, var, tgt)
            after_q = pit_calibration(recalibrate_pit(u[fit_rows], u[test_rows]))
            entry["calibration"] = {
                "levels": np.asarray(before.levels).round(3).tolist(),
                "coverage_before": np.asarray(before.coverage).mean(1).round(4).tolist(),
                "coverage_after": np.asarray(after.coverage).mean(1).round(4).tolist(),
                "ece_before": round(float(before.ece_mean), 4),
                "ece_after": round(float(after.ece_mean), 4),
                "ece_after_likelihood_scale": round(float(after_ml.ece_mean), 4),
                "ece_after_quantile": round(float(after_q.ece_mean), 4),
                "coverage_after_quantile": np.asarray(after_q.coverage).mean(1).round(4).tolist(),
                "ece_before_per_dim": np.asarray(before.ece).round(4).tolist(),
                "ece_after_per_dim": np.asarray(after.ece).round(4).tolist(),
                "ece_after_quantile_per_dim": np.asarray(after_q.ece).round(4).tolist(),
                "variance_scale": np.asarray(scale).round(4).tolist(),
                "variance_scale_likelihood": fitted["likelihood"].round(4).tolist(),
                "fit_rows": int(mean[fit_rows].shape[0]),
                "test_rows": int(mean[test_rows].shape[0]),
                "epistemic_share": round(
                    float(np.mean(pred["epistemic_var"]) / max(np.mean(var), 1e-30)), 4
                ),
            }
        samples = 8 if cfg.probabilistic else 1
        err = jax.jit(compounding_error, static_argnums=(0, 4))(
            ensemble_model(ens, "ts1"), ens_state, roll_key, win, samples
        )
        if cfg.probabilistic and cfg.ensemble_size > 1:
            # The members' mean moved deterministically (PETS's "expectation").
            expected = jax.jit(compounding_error, static_argnums=(0, 4))(
                ensemble_model(ens, "expectation"), ens_state, roll_key, win, 1
            )
            entry["compounding_expectation_mse"] = np.asarray(expected.mse_mean).round(7).tolist()
        curve = np.asarray(err.mse_mean)
        entry["compounding_mse"] = curve.round(7).tolist()
        entry["compounding_mean_mse"] = np.asarray(err.mean_mse).round(7).tolist()
        try:
            entry["compounding_growth"] = growth(curve)._asdict()
        except ValueError:
            entry["compounding_growth"] = None
        report["models"][name] = entry
    report["windows"] = int(win.actions.shape[0])
    diagnosed = o.uncertainty
    ens, ens_state = models[diagnosed], states[diagnosed]
    if "single_mlp" in report["models"]:
        single = report["models"]["single_mlp"]["compounding_mse"][-1]
        ensemble = report["models"]["bootstrap"]
        # The ensemble's samples (their spread counted) and its mean prediction.
        report["single_over_ensemble_at_k"] = {
            "samples": round(single / max(ensemble["compounding_mse"][-1], 1e-30), 3),
            "mean": round(single / max(ensemble["compounding_mean_mse"][-1], 1e-30), 3),
            "expectation": round(
                single / max(ensemble["compounding_expectation_mse"][-1], 1e-30), 3
            ),
        }

    # Cost of the compounding error over many start states (compile included).
    reps = -(-o.timing_starts // report["windows"])
    big = jax.tree.map(lambda x: np.concatenate([x] * reps)[: o.timing_starts], win)
    timings = {}
    for n in sorted({min(1000, o.timing_starts), o.timing_starts}):
        sub = jax.tree.map(lambda x, n=n: x[:n], big)
        start = time.perf_counter()
        fresh = jax.jit(compounding_error, static_argnums=(0, 4))
        jax.block_until_ready(fresh(ensemble_model(ens, "ts1"), ens_state, roll_key, sub, 8))
        timings[str(n)] = round(time.perf_counter() - start, 3)
    report["compounding_seconds_incl_compile"] = timings

    # Predicted vs real trajectories from three start states.
    model = ensemble_model(ens, "ts1")
    picks = np.linspace(0, report["windows"] - 1, 3).astype(int)
    sub = jax.tree.map(lambda x: x[picks], win)

    def paths(key):
        from mbrl_jax.core.rollout import rollout

        start = jnp.repeat(jnp.asarray(sub.observations[:, 0]), 8, axis=0)
        acts = jnp.repeat(jnp.asarray(sub.actions), 8, axis=0)
        res = rollout(model, lambda _k, _s, t: acts[:, t], ens_state, key, start, k)
        states_ = jnp.concatenate([res.states, res.final_state[None]], axis=0)
        return states_.reshape(k + 1, 3, 8, -1)

    predicted_paths = np.asarray(jax.jit(paths)(roll_key))
    report["trajectories"] = {
        "real": np.asarray(sub.observations).round(5).tolist(),
        "predicted_mean": predicted_paths.mean(2).transpose(1, 0, 2).round(5).tolist(),
        "predicted_std": predicted_paths.std(2).transpose(1, 0, 2).round(5).tolist(),
    }

    # K-fold cross-validation of the diagnosed model's fit.
    log(f"[diagnose] {o.folds}-fold cross-validation")
    train_rows = _rows(state.buffer.data, 0, split)
    cv = cross_validate(ens, cv_key, train_rows, o.folds, max(5, base.num_epochs // 2))
    report["cross_validation"] = {
        "folds": o.folds,
        "fold_mse": np.asarray(cv.fold_mse).round(7).tolist(),
        "mse_mean": round(float(cv.mse_mean), 7),
        "mse_std": round(float(cv.mse_std), 7),
        "nll_mean": round(float(cv.nll_mean), 4),
    }

    # Exploitation gap of the planner through the diagnosed model.
    log("[diagnose] exploitation gap")
    cost_fn = task.state_cost_fn if task.reward_fn is not None else None
    planning_model = with_task(
        ensemble_model(ens, config.propagation),
        task.reward_fn,
        task.termination_fn,
        cost_fn,
        config.state_cost,
    )
    reward_fn = None
    if cost_fn is not None and config.state_cost > 0:

        def reward_fn(obs, action, next_obs, reward):
            return reward - config.state_cost * cost_fn(next_obs)

    action_spec = ActionSpec.from_space(env.action_space(env_params))
    mpc = pets.planner_config(config, ens_config.ensemble_size)
    settings = [("horizon", h, dataclasses.replace(mpc, horizon=h, beta=0.0)) for h in o.horizons]
    settings += [("beta", b, dataclasses.replace(mpc, beta=float(b))) for b in o.betas]
    worst = dataclasses.replace(mpc, objective="worst_member", num_members=ens_config.ensemble_size)
    settings += [("worst_member", mpc.horizon, worst)]
    gaps = []
    for what, value, mpc_c in settings:
        planner = make_planner(mpc_c, planning_model, action_spec)
        run = jax.jit(
            jax.vmap(
                lambda key, planner=planner, mpc_c=mpc_c: exploitation_gap(
                    planner, ens_state, env, env_params, key, steps, mpc_c.discount, reward_fn
                )
            )
        )
        # The same start states for every setting, several episodes each.
        g = run(jax.random.split(gap_key, o.gap_episodes))
        m = np.asarray(g.mask)
        gap_steps = np.asarray(g.gap)[m]
        gaps.append(
            {
                "vary": what,
                "value": value,
                "horizon": mpc_c.horizon,
                "beta": mpc_c.beta,
                "objective": mpc_c.objective,
                "gap_mean": round(float(gap_steps.mean()), 3),
                "gap_std": round(float(gap_steps.std()), 3),
                "episodes": o.gap_episodes,
                "predicted_mean": round(float(np.asarray(g.predicted)[m].mean()), 3),
                "real_mean": round(float(np.asarray(g.real)[m].mean()), 3),
                "episode_return": round(float(np.mean(g.episode_return)), 2),
            }
        )
        log(f"[diagnose]   {what}={value}: gap {gaps[-1]['gap_mean']}")
    report["exploitation_gap"] = gaps

    if o.compare_models:
        for kind in MODEL_KINDS:
            if kind == o.uncertainty:
                continue
            log(f"[diagnose] PETS with {kind}")
            _, st, out_k = run_pets(kind)
            report["pets_returns"][kind] = [
                *np.asarray(st.random_out[0]).sum(-1).tolist(),
                *np.asarray(out_k[0]).sum(-1).tolist(),
            ]
    report["seconds"] = round(time.perf_counter() - t0, 1)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "diagnose.json").write_text(json.dumps(report, indent=1))
        figures = plot_report(report, out)
        write_html(report, figures, out / "index.html")
    return report


def plot_report(report: dict, out: Path) -> list[str]:
    """Writes the report's PNGs into ``out``; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, entry in report["models"].items():
        curve = entry["compounding_mse"]
        line = ax.semilogy(range(1, len(curve) + 1), curve, "o-", ms=3, label=name)[0]
        if entry["compounding_mean_mse"] != curve:
            ax.semilogy(
                range(1, len(curve) + 1),
                entry["compounding_mean_mse"],
                "--",
                color=line.get_color(),
                label=f"{name} (mean of samples)",
            )
        if "compounding_expectation_mse" in entry:
            ax.semilogy(
                range(1, len(curve) + 1),
                entry["compounding_expectation_mse"],
                ":",
                color=line.get_color(),
                label=f"{name} (expectation propagation)",
            )
    ax.set(title=f"{report['env']}: open-loop error", xlabel="k (steps)", ylabel="state MSE")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "compounding.png", dpi=100)
    names.append("compounding.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k:", label="calibrated")
    for name, entry in report["models"].items():
        cal = entry.get("calibration")
        if cal:
            ax.plot(
                cal["levels"],
                cal["coverage_before"],
                "o-",
                ms=3,
                label=f"{name} (ECE {cal['ece_before']:.3f})",
            )
            ax.plot(
                cal["levels"],
                cal["coverage_after"],
                "--",
                alpha=0.7,
                label=f"{name} rescaled ({cal['ece_after']:.3f})",
            )
            ax.plot(
                cal["levels"],
                cal["coverage_after_quantile"],
                ":",
                alpha=0.7,
                label=f"{name} quantile-recalibrated ({cal['ece_after_quantile']:.3f})",
            )
    ax.set(title="reliability (policy's held-out data)", xlabel="nominal level", ylabel="coverage")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "reliability.png", dpi=100)
    names.append("reliability.png")
    plt.close(fig)

    traj = report["trajectories"]
    real = np.asarray(traj["real"])
    mean, std = np.asarray(traj["predicted_mean"]), np.asarray(traj["predicted_std"])
    dims = real.shape[-1]
    fig, axes = plt.subplots(
        real.shape[0], dims, figsize=(3 * dims, 2.4 * real.shape[0]), squeeze=False
    )
    t = np.arange(real.shape[1])
    for i in range(real.shape[0]):
        for d in range(dims):
            ax = axes[i, d]
            ax.plot(t, real[i, :, d], "k-", label="real")
            ax.plot(t, mean[i, :, d], "C0-", label="model")
            ax.fill_between(
                t,
                mean[i, :, d] - 2 * std[i, :, d],
                mean[i, :, d] + 2 * std[i, :, d],
                color="C0",
                alpha=0.2,
            )
            ax.set_title(f"start {i}, dim {d}", fontsize=8)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "trajectories.png", dpi=90)
    names.append("trajectories.png")
    plt.close(fig)

    gaps = report["exploitation_gap"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, what in zip(axes, ("horizon", "beta"), strict=True):
        rows = [g for g in gaps if g["vary"] == what]
        x = [g["value"] for g in rows]
        ax.errorbar(
            x, [g["gap_mean"] for g in rows], yerr=[g["gap_std"] for g in rows], fmt="o-", capsize=3
        )
        ax.axhline(0, color="k", lw=0.5)
        ax.set(xlabel=what, ylabel="predicted - real return", title=f"exploitation gap vs {what}")
    fig.tight_layout()
    fig.savefig(out / "exploitation.png", dpi=100)
    names.append("exploitation.png")
    plt.close(fig)
    return names


def write_html(report: dict, figures: list[str], path: Path) -> None:
    """One page with the figures and the report's numbers."""
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{e['one_step_mse_policy']:.3g}</td>"
        f"<td>{e['one_step_mse_random']:.3g}</td>"
        f"<td>{e.get('calibration', {}).get('ece_before', float('nan')):.3f}</td>"
        f"<td>{e.get('calibration', {}).get('ece_after', float('nan')):.3f}</td>"
        f"<td>{e['compounding_mse'][-1]:.3g}</td></tr>"
        for name, e in report["models"].items()
    )
    images = "".join(f'<p><img src="{html.escape(f)}"></p>' for f in figures)
    page = (
        f"<html><head><meta charset='utf-8'><title>mbrl-jax diagnose: "
        f"{html.escape(report['env'])}</title></head><body>"
        f"<h1>{html.escape(report['env'])}</h1>"
        "<table border=1 cellpadding=4><tr><th>model</th><th>one-step MSE (policy)</th>"
        "<th>one-step MSE (random)</th><th>ECE</th><th>ECE rescaled</th>"
        f"<th>MSE at k={report['options']['k']}</th></tr>{rows}</table>"
        f"{images}<pre>{html.escape(json.dumps(report, indent=1))}</pre></body></html>"
    )
    path.write_text(page)
