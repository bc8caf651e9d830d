import json

from mbrl_jax import cli


def test_envs_lists_mazes_and_gymnax(capsys):
    assert cli.main(["envs"]) == 0
    out = capsys.readouterr().out
    assert "DynaMaze" in out and "CartPole-v1" in out
    assert "Other environments (mbrl_jax):\n  ContinuousCartPole\n" in out
    assert "Brax tasks (the [brax] extra)" in out and "  hopper-brax\n" in out
    assert "DM Control Suite tasks (the [dmc] extra)" in out and "  cartpole_swingup-dmc\n" in out


def test_plan_dyna_maze(tmp_path, capsys):
    assert (
        cli.main(["plan", "--env", "DynaMaze", "--transitions", "3000", "--out", str(tmp_path)])
        == 0
    )
    out = capsys.readouterr().out
    assert "greedy path 14 steps" in out
    summary = json.loads((tmp_path / "plan_DynaMaze.json").read_text())
    assert summary["true_path_length"] == 14
    assert summary["learned_path_length"] == 14
    assert (tmp_path / "plan_DynaMaze.png").stat().st_size > 5000


def test_plan_rejects_non_maze(tmp_path, capsys):
    assert cli.main(["plan", "--env", "CartPole-v1", "--out", str(tmp_path)]) == 2
    assert "choose from" in capsys.readouterr().err
