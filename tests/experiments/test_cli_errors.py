"""Every bad input to the command line is one line on standard error and exit
code 2; nothing is lost and nothing impossible starts running."""

import json

import jax
import pytest

from mbrl_jax import cli, envs
from mbrl_jax.agents import alphazero, muzero
from mbrl_jax.agents.common import vector_observation_shape
from mbrl_jax.experiments import compare, outputs, registry


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--learning-rate", "nan"], "--learning-rate: must be a finite number in (0.0, 1.0]"),
        (["--epsilon", "nan"], "argument --epsilon: must be a finite number in [0.0, 1.0]"),
        (["--epsilon", "inf"], "argument --epsilon"),
        (["--kappa", "nan"], "argument --kappa"),
        (["--theta", "-1"], "argument --theta: must be in [0.0, inf), got -1"),
        (["--discount", "1.5"], "argument --discount"),
        (["--near-optimal", "nan"], "--near-optimal: must be a finite number in [1.0, inf)"),
        (["--near-optimal", "0.5"], "argument --near-optimal: must be in [1.0, inf)"),
        (["--seed", "99999999999999999999"], "--seed: must be in [0, 9223372036854775807]"),
        (["--seed", "-1"], "argument --seed"),
        (["--steps", "3000000000"], "argument --steps: must be in [1, 2147483647]"),
        (["--steps", "1.5"], "argument --steps: must be an integer"),
        (["--episodes", "0"], "argument --episodes"),
        (["--episodes", "10000000"], "step budget of 4000005000 per seed is more than 2147483647"),
    ],
)
def test_compare_bad_numbers(argv, message, tmp_path, capsys):
    assert cli.main(["compare", *argv, "--out", str(tmp_path)]) == 2
    assert message in one_line_error(capsys)
    assert not (tmp_path / "results.json").exists()


def test_plan_bad_numbers(tmp_path, capsys):
    assert cli.main(["plan", "--discount", "1.0", "--out", str(tmp_path)]) == 2
    assert "argument --discount: must be in [0.0, 1.0), got 1.0" in one_line_error(capsys)
    assert cli.main(["plan", "--transitions", "0", "--out", str(tmp_path)]) == 2
    assert "argument --transitions" in one_line_error(capsys)


def test_version(capsys):
    from mbrl_jax import __version__

    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"mbrl-jax {__version__}"


def test_run_too_large_for_memory_is_refused_before_compiling(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(outputs, "physical_memory_bytes", lambda: 2**20)
    argv = ["compare", "--agents", "dyna_q:5", "--seeds", "64", "--steps", "5000"]
    assert cli.main([*argv, "--out", str(tmp_path)]) == 2
    line = one_line_error_after_progress(capsys)
    assert "dyna_q:5: 64 seeds x 5000 steps would hold" in line and "GiB of outputs" in line
    assert "compiling" not in capsys.readouterr().err


def one_line_error_after_progress(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [x for x in lines if x.startswith("error:")]
    assert len(errors) == 1 and not any("compiling" in x for x in lines), lines
    return errors[0]


def test_out_that_cannot_be_written_is_refused_before_running(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    assert cli.main(["compare", "--out", str(blocker)]) == 2
    assert "exists and is not a directory" in one_line_error(capsys)
    assert cli.main(["compare", "--out", str(blocker / "sub")]) == 2
    assert "cannot write there" in one_line_error(capsys)


def test_an_earlier_run_is_kept_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "results"
    argv = ["compare", "--agents", "q_learning", "--seeds", "2", "--steps", "60"]
    assert cli.main([*argv, "--out", str(out)]) == 0
    first = (out / "results.json").read_text()
    assert cli.main([*argv, "--seed", "1", "--out", str(out)]) == 0
    assert "holds an earlier run" in capsys.readouterr().err
    assert (out / "results.json").read_text() == first
    assert json.loads((tmp_path / "results-2" / "results.json").read_text())["seeds"] == 2
    assert cli.main([*argv, "--seed", "1", "--overwrite", "--out", str(out)]) == 0
    assert (out / "results.json").read_text() != first
    assert not (tmp_path / "results-3").exists()


def test_outputs_are_written_atomically(tmp_path, monkeypatch):
    monkeypatch.setattr(compare, "plot_curves", lambda results, path: path.write_bytes(b"png 1"))
    compare.write_outputs({"env": "x"}, tmp_path)

    def broken_plot(results, path):
        path.write_bytes(b"half a png")
        raise OSError("disk full")

    monkeypatch.setattr(compare, "plot_curves", broken_plot)
    with pytest.raises(OSError, match="disk full"):
        compare.write_outputs({"env": "y"}, tmp_path)
    # The JSON was replaced whole; the png kept its old content rather than half
    # a new one, and no temporary file is left behind.
    assert json.loads((tmp_path / "results.json").read_text())["env"] == "y"
    assert (tmp_path / "learning_curves.png").read_bytes() == b"png 1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["learning_curves.png", "results.json"]


def test_search_agents_on_a_maze():
    env, params = envs.make("DynaMaze")
    for module, name in ((alphazero, "alphazero"), (muzero, "muzero")):
        expected = f"{name} needs vector observations.*VectorObservation"
        with pytest.raises(ValueError, match=expected):
            module.make_train(module.Config(), env, params)
    assert vector_observation_shape(envs.VectorObservation(env), params, "x") == (54,)
    # The comparison runner wraps mazes to one-hot observations for them.
    budget = registry.Budget(num_steps=64)
    run = registry.build("alphazero", env, params, budget, registry.CommonSettings())
    assert "one-hot observations" in run.description
    out = jax.eval_shape(run.train, jax.random.key(0))
    assert out.eval_return.ndim == 1


def test_vector_observation_get_obs_matches_reset():
    env, params = envs.make("DynaMaze")
    wrapped = envs.VectorObservation(env)
    obs, state = wrapped.reset(jax.random.key(0), params)
    assert obs.shape == (params.num_states,)
    assert (wrapped.get_obs(state, params) == obs).all()


@pytest.mark.parametrize(
    "spec, env_name, steps, real, parallel",
    [
        ("alphazero", "CartPole-v1", 5000, 4096, 32),  # 2 rounds of 32 envs x 64 steps
        ("muzero", "CartPole-v1", 5000, 4608, 16),  # 9 rounds of 16 envs x 32 steps
        ("alphazero", "CartPole-v1", 100, 2048, 32),  # at least one round
        ("pets", "ContinuousCartPole", 6200, 6200, 1),  # 31 trials x 200 steps
        ("dyna_q:5", "DynaMaze", 3000, None, 1),  # the budget as it is
    ],
)
def test_steps_count_real_environment_steps_for_every_agent(spec, env_name, steps, real, parallel):
    env, params = envs.make(env_name)
    budget = registry.Budget(num_steps=steps)
    run = registry.build(spec, env, params, budget, registry.CommonSettings())
    assert run.real_steps == real and run.parallel_envs == parallel
    if real is not None:
        assert f"{real} " in run.description


def test_search_agents_refuse_an_episode_budget():
    env, params = envs.make("CartPole-v1")
    budget = registry.Budget(num_steps=5000, episodes=10)
    with pytest.raises(ValueError, match="no episode budget; give --steps"):
        registry.build("muzero", env, params, budget, registry.CommonSettings())


def test_help_lists_agents_environments_and_defaults(capsys):
    from mbrl_jax.experiments.registry import agent_summaries

    assert cli.main(["compare", "--help"]) == 0
    text = capsys.readouterr().out
    for usage, summary in agent_summaries():
        assert usage in text and summary and summary in text
    assert "DynaMaze" in text and "CartPole-v1" in text
    assert "(default: 30)" in text and "(default: DynaMaze)" in text
    assert "(default: None)" not in text and "``" not in text
    assert cli.main(["plan", "--help"]) == 0
    assert "(default: 2000)" in capsys.readouterr().out


def test_the_command_keeps_a_persistent_compilation_cache(tmp_path):
    import os
    import subprocess
    import sys

    cache = tmp_path / "xla"
    env = dict(os.environ, MBRL_JAX_CACHE_DIR=str(cache))
    argv = ["compare", "--agents", "q_learning", "--seeds", "2", "--steps", "100"]
    argv += ["--eval-episodes", "0", "--quiet"]
    command = [sys.executable, "-m", "mbrl_jax.cli", *argv, "--out", str(tmp_path / "r")]
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    for _ in range(2):  # the second run loads the programs from the cache
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        # XLA:CPU's spurious "AOT result ... not supported" error is not shown.
        assert "AOT" not in done.stderr
    from mbrl_jax.core.jit import enable_compilation_cache, machine_tag

    # The programs were written, under this machine's own subdirectory.
    assert [p.name for p in cache.iterdir()] == [machine_tag()]
    assert any((cache / machine_tag()).iterdir())

    assert enable_compilation_cache("off") is None  # and nothing was switched on here
    assert not jax.config.jax_compilation_cache_dir


def test_bench_names_the_scripts_and_refuses_unknown_ones(capsys):
    assert set(cli._benchmark_names()) == {
        "dreamer",
        "dyna_throughput",
        "env_throughput",
        "mbpo",
        "pets",
        "policy_search",
        "scaling",
        "search",
    }
    assert cli.main(["bench", "nope"]) == 2
    assert "unknown benchmark 'nope'; valid: dreamer, dyna_throughput" in one_line_error(capsys)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--resume"], "RunOptions.resume needs a checkpoint_dir (--checkpoint-dir DIR)"),
        (["--chunks", "0"], "argument --chunks: must be in [1, 100000], got 0"),
        (["--eval-episodes", "-1"], "argument --eval-episodes"),
        (["--eval-every", "nan"], "argument --eval-every: must be an integer"),
    ],
)
def test_run_option_errors(argv, message, tmp_path, capsys):
    assert cli.main(["compare", *argv, "--out", str(tmp_path)]) == 2
    assert message in one_line_error(capsys)


@pytest.mark.parametrize("flag", ["--checkpoint-dir", "--tensorboard", "--log-jsonl"])
def test_run_outputs_that_cannot_be_written_are_refused_before_compiling(flag, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    target = blocker / "sub" if flag == "--log-jsonl" else blocker
    argv = ["compare", "--agents", "q_learning", flag, str(target), "--out", str(tmp_path / "r")]
    assert cli.main(argv) == 2
    line = one_line_error_after_progress(capsys)
    assert flag in line and str(blocker) in line


def test_checkpointed_run_resumes_to_the_same_results(tmp_path, capsys):
    argv = ["compare", "--agents", "dyna_q:0", "--seeds", "3", "--steps", "900"]
    argv += ["--chunks", "3", "--eval-every", "1", "--checkpoint-dir", str(tmp_path / "ck")]
    argv += ["--log-jsonl", str(tmp_path / "log.jsonl"), "--quiet"]
    assert cli.main([*argv, "--out", str(tmp_path / "a")]) == 0
    assert capsys.readouterr().err == ""  # --quiet
    assert [p.name for p in (tmp_path / "ck").iterdir()] == ["dyna_q-0"]
    assert cli.main([*argv, "--resume", "--out", str(tmp_path / "b")]) == 0
    a = json.loads((tmp_path / "a" / "results.json").read_text())
    b = json.loads((tmp_path / "b" / "results.json").read_text())
    for spec in ("dyna_q:0",):
        x, y = a["agents"][spec], b["agents"][spec]
        assert x["episode_lengths"] == y["episode_lengths"]
        assert x["eval_steps"] == y["eval_steps"] == [256, 512, 900]
        assert x["eval_returns"] == y["eval_returns"] and len(x["eval_returns"]) == 3
        assert x["resumed_at_steps"] == 0 and y["resumed_at_steps"] == 768
        assert x["eval_episodes"] == 10 and "greedy" in x["eval_note"]
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert {json.loads(line)["event"] for line in lines} == {"chunk", "evaluation"}
