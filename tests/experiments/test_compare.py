import json

import numpy as np
import pytest

from mbrl_jax import cli
from mbrl_jax.experiments import compare


def test_compare_writes_table_json_and_png(tmp_path, capsys):
    code = cli.main(
        [
            "compare",
            "--env",
            "DynaMaze",
            "--agents",
            "q_learning,dyna_q:10,prioritized_sweeping:5",
            "--seeds",
            "4",
            "--steps",
            "1500",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    assert "dyna_q:10" in captured.out and "prioritized_sweeping:5" in captured.out
    assert "[3/3] prioritized_sweeping:5: done" in captured.err
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["env"] == "DynaMaze" and results["seeds"] == 4
    assert results["optimal_path_length"] == 14
    entry = results["agents"]["dyna_q:10"]
    assert len(entry["episode_lengths"]) == 4 and len(entry["episode_returns"]) == 4
    for lengths, returns in zip(entry["episode_lengths"], entry["episode_returns"], strict=True):
        assert len(lengths) == len(returns) and sum(lengths) <= 1500
        assert all(r == pytest.approx(1.0) for r in returns)
    assert entry["planning_updates"] == pytest.approx(1500 * 10)
    assert entry["compile_s"] > 0 and entry["run_s"] > 0
    assert (tmp_path / "learning_curves.png").stat().st_size > 10_000


def test_compare_episode_budget(tmp_path):
    results = compare.run_comparison(
        "GridWorld-5x5", ["dyna_q:5"], seeds=3, episodes=7, log=lambda msg: None
    )
    entry = results["agents"]["dyna_q:5"]
    assert [len(x) for x in entry["episode_lengths"]] == [7, 7, 7]
    assert entry["real_steps"] == pytest.approx(np.mean([sum(x) for x in entry["episode_lengths"]]))
    returns = np.concatenate(entry["episode_returns"])
    lengths = np.concatenate(entry["episode_lengths"])
    # Episodes that reach the goal pay -0.01 per step and +1 at the end; those cut
    # at the 100-step limit pay -0.01 per step only.
    reached = lengths < 100
    np.testing.assert_allclose(returns[reached], 1.0 - 0.01 * (lengths[reached] - 1), atol=1e-4)
    np.testing.assert_allclose(returns[~reached], -0.01 * lengths[~reached], atol=1e-4)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--agents", "dyna_q:5,alphago"], "unknown agent 'alphago'; valid: q_learning, dyna_q:N"),
        (["--env", "Atlantis"], "unknown environment 'Atlantis'; valid: GridWorld-5x5"),
        (["--agents", "dyna_q:x"], "expected an integer"),
        (["--env", "CartPole-v1", "--agents", "dyna_q:5"], "discrete state index"),
        (["--seeds", "0"], "argument --seeds: must be in [1, 1000000], got 0"),
    ],
)
def test_compare_bad_input_exit_2(argv, message, tmp_path, capsys):
    assert cli.main(["compare", *argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_compare_devices_flag(tmp_path, capsys):
    from mbrl_jax import cli

    code = cli.main(
        [
            "compare",
            "--agents",
            "dyna_q:5",
            "--seeds",
            "3",
            "--steps",
            "200",
            "--devices",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["devices"]["count"] == 1
    capsys.readouterr()
    for bad in ("99", "0", "two"):
        assert cli.main(["compare", "--devices", bad, "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "devices" in err[0], err
