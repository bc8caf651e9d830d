"""``mbrl-jax diagnose``: bad input is one line and exit 2; a tiny run writes
the whole report."""

import json

import pytest

from mbrl_jax import cli
from mbrl_jax.experiments.diagnose import DiagnoseOptions

TINY = [
    "--trials", "3", "--held-out-trials", "1", "--no-compare", "--k", "3",
    "--horizons", "3", "--betas", "0", "--random-steps", "100", "--folds", "2",
    "--gap-episodes", "2",
    "--timing-starts", "50", "--epochs", "2", "--trial-length", "20", "--quiet",
]  # fmt: skip


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--trials", "2"], "argument --trials: must be in [3, 1000]"),
        (["--trials", "4", "--held-out-trials", "3"], "held_out_trials must be in [1, 2]"),
        (["--horizons", "5,x"], "argument --horizons"),
        (["--horizons", "0"], "argument --horizons"),
        (["--betas", "nan"], "argument --betas"),
        (["--model", "gp"], "argument --model: invalid choice"),
        (["--k", "20", "--trial-length", "10"], "trial_length must be in [20, 100000]"),
        (["--env", "DynaMaze", "--no-compare"], "vector observation"),
        (["--env", "Nope"], "unknown environment"),
    ],
)
def test_diagnose_bad_input(argv, message, tmp_path, capsys):
    assert cli.main(["diagnose", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1], err


def test_options_validate_on_construction():
    with pytest.raises(ValueError, match="horizons"):
        DiagnoseOptions(horizons=(True,))
    with pytest.raises(ValueError, match="uncertainty"):
        DiagnoseOptions(uncertainty="ensemble")


@pytest.mark.slow
def test_tiny_diagnose_writes_the_report(tmp_path, capsys):
    assert cli.main(["diagnose", "--out", str(tmp_path), *TINY]) == 0
    report = json.loads((tmp_path / "diagnose.json").read_text())
    for name in ("compounding.png", "reliability.png", "trajectories.png", "exploitation.png"):
        assert (tmp_path / name).stat().st_size > 1000
    assert (tmp_path / "index.html").read_text().count("<img") == 4
    entry = report["models"]["bootstrap"]
    assert len(entry["compounding_mse"]) == 3 and entry["one_step_mse_policy"] > 0
    assert 0 <= entry["calibration"]["ece_before"] <= 1
    assert [g["vary"] for g in report["exploitation_gap"]] == ["horizon", "beta", "worst_member"]
    assert len(report["cross_validation"]["fold_mse"]) == 2
    assert "exploitation gap" in capsys.readouterr().out
