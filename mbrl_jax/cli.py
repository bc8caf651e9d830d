"""The mbrl-jax command line: compare agents over many seeds, list environments,
plan in a maze."""

from __future__ import annotations

import argparse
import os
import sys

# This module imports nothing that loads JAX at import time, so the command
# can configure it first (console_main).
MAX_SEED = 2**63 - 1


def _number(kind, low=None, high=None, low_open=False, high_open=False):
    """An argparse ``type`` that parses ``kind`` (``int`` or ``float``) and checks
    it with the configs' own validation (NaN and inf never pass), so a bad value
    is one line and exit 2."""
    from mbrl_jax.core.validation import check_float_value, check_int_value, range_text

    def parse(raw: str):
        try:
            value = kind(raw)
        except ValueError:
            noun = "an integer" if kind is int else "a finite number"
            text = range_text(low, high, low_open, high_open)
            raise argparse.ArgumentTypeError(f"must be {noun} in {text}, got {raw!r}") from None
        try:
            if kind is int:
                return check_int_value("", value, low, high)
            return check_float_value("", value, low, high, low_open, high_open)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _cmd_envs(args: argparse.Namespace) -> int:
    from mbrl_jax import envs

    print("Mazes (mbrl_jax):")
    for name in envs.maze_names():
        _, params = envs.make(name)
        print(f"  {name:<16} {params.height}x{params.width}, {params.num_states} states")
    import gymnax

    from mbrl_jax.envs import brax_env, dmc

    groups = [
        ("gymnax environments (passed through):", list(gymnax.registered_envs), None),
        ("Brax tasks (the [brax] extra):", brax_env.registered_names(), brax_env.brax_available()),
        ("DM Control Suite tasks (the [dmc] extra):", dmc.registered_names(), dmc.dmc_available()),
    ]
    grouped = {name for _, names, _ in groups for name in names}
    others = [n for n in envs.names() if n not in grouped and n not in envs.maze_names()]
    print("Other environments (mbrl_jax):")
    for name in others:
        print(f"  {name}")
    for title, names, installed in groups:
        note = "" if installed is None else (" installed" if installed else " not installed")
        print(title[:-1] + (f",{note}:" if note else ":"))
        for name in names:
            print(f"  {name}")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from mbrl_jax.experiments.outputs import prepare_out_dir
    from mbrl_jax.experiments.plan import plan_maze

    try:
        out = prepare_out_dir(args.out, overwrite=True)
        summary = plan_maze(args.env, args.transitions, args.discount, args.phase, args.seed, out)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(summary["ascii"])
    print(
        f"value iteration on the true MDP:          greedy path {summary['true_path_length']} "
        f"steps ({summary['true_iterations']} iterations)"
    )
    learned = summary["learned_path_length"]
    shown = "does not reach the goal" if learned < 0 else f"greedy path {learned} steps"
    print(
        f"value iteration on a count model learned\n  from {args.transitions} random "
        f"transitions:            {shown}"
    )
    print(f"wrote {summary['png']}")
    return 0


def _numbers(kind, low, high):
    """An argparse ``type`` for a comma-separated list of ``_number(kind, ...)``."""
    one = _number(kind, low, high)

    def parse(raw: str):
        parts = [x.strip() for x in raw.split(",") if x.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(f"must be a comma-separated list, got {raw!r}")
        return tuple(one(x) for x in parts)

    parse.__name__ = f"list of {kind.__name__}"
    return parse


def _cmd_diagnose(args: argparse.Namespace) -> int:
    from mbrl_jax.experiments.diagnose import DiagnoseOptions, diagnose
    from mbrl_jax.experiments.outputs import prepare_out_dir

    try:
        options = DiagnoseOptions(
            env=args.env,
            trials=args.trials,
            held_out_trials=args.held_out_trials,
            uncertainty=args.model,
            compare_models=not args.no_compare,
            k=args.k,
            horizons=args.horizons,
            betas=args.betas,
            random_steps=args.random_steps,
            folds=args.folds,
            gap_episodes=args.gap_episodes,
            timing_starts=args.timing_starts,
            epochs=args.epochs,
            trial_length=args.trial_length,
            seed=args.seed,
        )
        out = prepare_out_dir(args.out, overwrite=True)
        log = (lambda *_: None) if args.quiet else (lambda m: print(m, file=sys.stderr))
        report = diagnose(options, out, log=log)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"{'model':<12} {'1-step MSE policy':>18} {'random':>10} {'ECE':>7} {'rescaled':>9}"
        f" {'MSE k=' + str(options.k):>10}"
    )
    for name, e in report["models"].items():
        cal = e.get("calibration") or {}
        ece = cal.get("ece_before", float("nan")), cal.get("ece_after", float("nan"))
        print(
            f"{name:<12} {e['one_step_mse_policy']:>18.3g} {e['one_step_mse_random']:>10.3g} "
            f"{ece[0]:>7.3f} {ece[1]:>9.3f} {e['compounding_mse'][-1]:>10.3g}"
        )
    for g in report["exploitation_gap"]:
        print(
            f"exploitation gap ({g['objective']}, H={g['horizon']}, beta={g['beta']}): "
            f"{g['gap_mean']:.3f} +- {g['gap_std']:.3f} (predicted {g['predicted_mean']:.2f}, "
            f"real {g['real_mean']:.2f})"
        )
    print(f"wrote {out / 'index.html'} ({report['seconds']} s)")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from mbrl_jax.core.sharding import initialize_distributed

    try:  # before anything starts an XLA backend (gymnax does on import)
        initialize_distributed()
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from mbrl_jax import envs
    from mbrl_jax.experiments import compare
    from mbrl_jax.experiments.chunked_run import RunOptions
    from mbrl_jax.experiments.outputs import prepare_out_dir
    from mbrl_jax.experiments.registry import CommonSettings, agent_names, parse_spec

    if args.env not in envs.names():
        print(
            f"error: unknown environment {args.env!r}; valid: {', '.join(envs.names())}",
            file=sys.stderr,
        )
        return 2
    agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    if not agents:
        print(f"error: no agents given; valid: {', '.join(agent_names())}", file=sys.stderr)
        return 2
    for spec in agents:
        try:
            parse_spec(spec)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    devices = args.devices
    try:
        if devices != "all":
            try:
                devices = int(devices)
            except ValueError:
                raise ValueError(
                    f"--devices must be 'all' or an integer, got {devices!r}"
                ) from None
        compare.device_mesh(devices)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        out = prepare_out_dir(args.out, overwrite=args.overwrite)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if str(out) != str(args.out):
        print(
            f"{args.out}/results.json holds an earlier run (kept); this run writes to {out}/ "
            "(--overwrite replaces it instead)",
            file=sys.stderr,
        )
    settings = CommonSettings(
        learning_rate=args.learning_rate,
        epsilon=args.epsilon,
        discount=args.discount,
        kappa=args.kappa,
        theta=args.theta,
        planner=args.planner.replace("-", "_"),
    )
    try:
        options = RunOptions(
            chunks=args.chunks,
            eval_episodes=args.eval_episodes,
            eval_every=args.eval_every,
            checkpoint_dir=args.checkpoint_dir,
            resume=args.resume,
            progress=not args.quiet,
            jsonl=args.log_jsonl,
            tensorboard=args.tensorboard,
        )
        results = compare.run_comparison(
            args.env,
            agents,
            seeds=args.seeds,
            steps=args.steps,
            episodes=args.episodes,
            settings=settings,
            near_optimal=args.near_optimal,
            seed=args.seed,
            devices=devices,
            options=options,
            log=(lambda msg: None) if args.quiet else None,
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    import jax

    if jax.process_index() != 0:  # process 0 reports for every process
        return 0
    print(compare.format_table(results))
    paths = compare.write_outputs(results, out)
    print(f"wrote {paths['json']} and {paths['png']}")
    return 0


def _benchmark_names() -> list[str]:
    from mbrl_jax.experiments.bench import benchmark_names

    return benchmark_names()


def _cmd_bench(args: argparse.Namespace) -> int:
    from mbrl_jax.experiments.bench import run_benchmark

    try:
        return run_benchmark(args.name, full=args.full, out=args.out)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after each option (not where there is none to show); the
    epilog's lists kept as written."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def _compare_epilog() -> str:
    from mbrl_jax import envs
    from mbrl_jax.experiments.registry import agent_summaries

    agents = "\n".join(f"  {usage:<24} {summary}" for usage, summary in agent_summaries())
    return (
        f"agents (--agents, comma-separated):\n{agents}\n\n"
        f"environments (--env): {', '.join(envs.names())}\n\n"
        "--steps counts real environment steps per seed for every agent."
    )


class _Parser(argparse.ArgumentParser):
    """Bad arguments are one line on standard error (``--help`` shows the usage)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mbrl-jax", description=__doc__)
    from mbrl_jax import __version__
    from mbrl_jax.core.validation import MAX_STEPS

    parser.add_argument("--version", action="version", version=f"mbrl-jax {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p_envs = sub.add_parser("envs", help="list environments")
    p_envs.set_defaults(func=_cmd_envs)

    from mbrl_jax.experiments.compare import DEFAULT_AGENTS, DEFAULT_ENV

    p_cmp = sub.add_parser(
        "compare",
        help="run several agents x many seeds on one environment; table, curves, results.json",
        description="Run several agents x many seeds on one environment: a table, "
        "learning curves and results.json.",
        epilog=_compare_epilog(),
        formatter_class=_Help,
    )
    p_cmp.add_argument("--env", default=DEFAULT_ENV, help="environment (listed below)")
    p_cmp.add_argument(
        "--agents",
        default=",".join(DEFAULT_AGENTS),
        help="comma-separated agent specs, e.g. q_learning,dyna_q:50",
    )
    p_cmp.add_argument(
        "--seeds", type=_number(int, 1, 1_000_000), default=30, help="seeds per agent"
    )
    p_cmp.add_argument(
        "--steps",
        type=_number(int, 1, MAX_STEPS),
        default=None,
        help="real environment steps per seed, every agent (3000 if neither this nor "
        "--episodes is given; with --episodes, a cap of 400 x episodes + 5000)",
    )
    p_cmp.add_argument(
        "--episodes",
        type=_number(int, 1, MAX_STEPS),
        default=None,
        help="stop each seed after this many episodes (trials)",
    )
    p_cmp.add_argument(
        "--learning-rate",
        type=_number(float, 0.0, 1.0, low_open=True),
        default=0.1,
        help="tabular agents' step size",
    )
    p_cmp.add_argument(
        "--epsilon", type=_number(float, 0.0, 1.0), default=0.1, help="epsilon-greedy exploration"
    )
    p_cmp.add_argument(
        "--discount", type=_number(float, 0.0, 1.0), default=0.95, help="tabular agents' discount"
    )
    p_cmp.add_argument(
        "--kappa", type=_number(float, 0.0), default=1e-3, help="Dyna-Q+ bonus weight"
    )
    p_cmp.add_argument(
        "--theta", type=_number(float, 0.0), default=1e-4, help="prioritized sweeping threshold"
    )
    p_cmp.add_argument(
        "--planner",
        choices=("shooting", "gradient", "cem-gradient"),
        default="shooting",
        help="PETS's planner: iCEM/CEM shooting, Adam through the ensemble, or CEM then Adam "
        "(pets:PLANNER overrides it for one agent)",
    )
    p_cmp.add_argument(
        "--near-optimal",
        type=_number(float, 1.0),
        default=1.3,
        help="near-optimal = within this factor of the shortest path",
    )
    p_cmp.add_argument("--seed", type=_number(int, 0, MAX_SEED), default=0, help="base PRNG seed")
    p_cmp.add_argument(
        "--devices",
        default="all",
        help="devices to shard the seeds over: an integer or 'all'. Several "
        "processes: set MBRL_JAX_COORDINATOR, MBRL_JAX_NUM_PROCESSES, MBRL_JAX_PROCESS_ID",
    )
    p_cmp.add_argument(
        "--out",
        default="results",
        help="output directory; one that holds a results.json is kept and the run goes "
        "to OUT-2, OUT-3, ... unless --overwrite",
    )
    p_cmp.add_argument("--overwrite", action="store_true", help="replace the results in --out")
    count = _number(int, 1, 100_000)
    for flag, kind, default, text in (
        ("--chunks", count, 10, "cut each run into about this many chunks (progress, evaluation)"),
        ("--eval-episodes", _number(int, 0, 100_000), 10, "evaluation episodes per seed (0: none)"),
        ("--eval-every", count, 2, "evaluate every this many chunks, and at the end"),
        ("--checkpoint-dir", None, None, "save each run after every chunk in DIR/<agent>/"),
        ("--log-jsonl", None, None, "append one JSON line per chunk and evaluation here"),
        ("--tensorboard", None, None, "TensorBoard event files here (needs tensorboardX)"),
    ):
        p_cmp.add_argument(flag, type=kind, default=default, help=text)
    for flag, text in (
        ("--resume", "continue each agent from its newest checkpoint in --checkpoint-dir"),
        ("--quiet", "no progress: only the table and the paths"),
    ):
        p_cmp.add_argument(flag, action="store_true", help=text)
    p_cmp.set_defaults(func=_cmd_compare)

    p_bench = sub.add_parser(
        "bench",
        help="run a benchmark script (a quick run unless --full) and print its JSON",
        description="Run one of the benchmarks/ scripts of a source checkout: "
        + (", ".join(_benchmark_names()) or "none found here")
        + ". Each measures a NumPy/Python reference in the same run.",
        formatter_class=_Help,
    )
    p_bench.add_argument("name", help="benchmark name")
    p_bench.add_argument("--full", action="store_true", help="the full run (minutes)")
    p_bench.add_argument("--out", default=None, help="also write the JSON to this file")
    p_bench.set_defaults(func=_cmd_bench)

    p_diag = sub.add_parser(
        "diagnose",
        help="a learned model's report: errors, calibration, compounding, exploitation gap",
        description="Runs PETS, holds out its last trials, fits the model (and, unless "
        "--no-compare, MC dropout, the Bayesian MLP and a single MLP) on the rest, and "
        "writes diagnose.json, PNGs and index.html: one-step error on the policy's and on "
        "random data, K-fold cross-validation, calibration before/after recalibration, "
        "k-step compounding error, predicted vs real trajectories, and the planner's "
        "exploitation gap against horizon and beta.",
        formatter_class=_Help,
    )
    p_diag.add_argument("--env", default="ContinuousCartPole", help="a PETS environment")
    p_diag.add_argument("--trials", type=_number(int, 3, 1000), default=6, help="PETS trials")
    p_diag.add_argument(
        "--held-out-trials", type=_number(int, 1, 998), default=2, help="last trials held out"
    )
    p_diag.add_argument(
        "--model",
        default="bootstrap",
        choices=("bootstrap", "dropout", "bayesian"),
        help="the model diagnosed",
    )
    p_diag.add_argument(
        "--no-compare", action="store_true", help="only the chosen model (much faster)"
    )
    p_diag.add_argument("--k", type=_number(int, 3, 1000), default=15, help="compounding steps")
    p_diag.add_argument(
        "--horizons",
        type=_numbers(int, 1, 1000),
        default=(5, 10, 15, 25),
        help="planning horizons of the exploitation gap",
    )
    p_diag.add_argument(
        "--betas",
        type=_numbers(float, -1e6, 1e6),
        default=(0.0, 1.0, 2.0),
        help="betas of the exploitation gap",
    )
    p_diag.add_argument(
        "--random-steps",
        type=_number(int, 100, 10**7),
        default=2000,
        help="random-policy held-out steps",
    )
    p_diag.add_argument(
        "--gap-episodes",
        type=_number(int, 1, 1000),
        default=4,
        help="MPC episodes per exploitation-gap setting",
    )
    p_diag.add_argument("--folds", type=_number(int, 2, 100), default=5, help="CV folds")
    p_diag.add_argument(
        "--timing-starts",
        type=_number(int, 1, 10**7),
        default=10_000,
        help="start states of the timed compounding-error call",
    )
    p_diag.add_argument(
        "--epochs", type=_number(int, 1, 10_000), default=None, help="model epochs (PETS's)"
    )
    p_diag.add_argument(
        "--trial-length",
        type=_number(int, 3, 100_000),
        default=None,
        help="steps per trial (PETS's)",
    )
    p_diag.add_argument("--seed", type=_number(int, 0, MAX_SEED), default=0, help="PRNG seed")
    p_diag.add_argument("--out", default="results/diagnose", help="output directory")
    p_diag.add_argument("--quiet", action="store_true", help="no progress lines")
    p_diag.set_defaults(func=_cmd_diagnose)

    p_plan = sub.add_parser(
        "plan",
        help="value iteration on the true MDP and on a learned count model",
        description="Value iteration on a maze's true MDP and on a count model learned "
        "from random transitions; prints both greedy path lengths, writes a figure.",
        formatter_class=_Help,
    )
    p_plan.add_argument("--env", default="DynaMaze", help="a maze (mbrl-jax envs lists them)")
    p_plan.add_argument(
        "--transitions",
        type=_number(int, 1, 10**8),
        default=2000,
        help="random transitions the count model learns from",
    )
    p_plan.add_argument(
        "--discount", type=_number(float, 0.0, 1.0, high_open=True), default=0.95, help="in [0, 1)"
    )
    p_plan.add_argument("--phase", type=int, default=0, choices=(0, 1), help="wall phase")
    p_plan.add_argument("--seed", type=_number(int, 0, MAX_SEED), default=0, help="PRNG seed")
    p_plan.add_argument("--out", default="results", help="output directory")
    p_plan.set_defaults(func=_cmd_plan)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # bad arguments (2), --help or --version (0)
        return int(exit_.code or 0)
    return args.func(args)


def console_main() -> int:
    """The ``mbrl-jax`` command: :func:`main` with JAX's persistent compilation
    cache on (``~/.cache/mbrl_jax/xla``; ``MBRL_JAX_CACHE_DIR`` moves it,
    ``MBRL_JAX_CACHE_DIR=off`` turns it off), so a repeated command skips most
    of its compile time.

    The cache lives in a subdirectory per machine (CPU model and features,
    jaxlib version), so a program compiled on one machine is never loaded on
    another. XLA:CPU logs a spurious error on every load from the cache on
    CPUs whose compiler tuning flags it mistakes for missing features
    (jax-ml/jax#38445), so while the cache is on the command sets
    ``TF_CPP_MIN_LOG_LEVEL=3`` unless it is already set (before JAX loads).
    """
    cache = os.environ.get("MBRL_JAX_CACHE_DIR", "")
    if cache.strip().lower() not in ("off", "0", "none"):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from mbrl_jax.core.jit import enable_compilation_cache

    enable_compilation_cache()
    return main()


if __name__ == "__main__":
    sys.exit(console_main())
