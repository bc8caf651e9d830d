import json

import numpy as np
import pytest

from mbrl_jax import cli
from mbrl_jax.experiments import compare, plots


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
        (["--env", "Pendulum-v1", "--agents", "dqn"], "env: DQN needs discrete actions"),
        (["--env", "Pendulum-v1", "--agents", "dyna_dqn"], "env: Dyna-DQN needs discrete"),
        (["--env", "CartPole-v1", "--agents", "sac"], "env: SAC needs continuous (Box)"),
        (["--env", "CartPole-v1", "--agents", "mbpo"], "needs continuous (Box) actions"),
        (["--env", "CartPole-v1", "--agents", "dqn", "--episodes", "3"], "no episode budget"),
        (["--env", "CartPole-v1", "--agents", "dyna_dqn:4"], "takes no argument"),
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


def test_episode_budget_leaves_no_zero_padding_in_cumulative_reward():
    results = compare.run_comparison(
        "DynaMaze", ["dyna_q:5"], seeds=3, episodes=3, steps=2000, log=lambda msg: None
    )
    entry = results["agents"]["dyna_q:5"]
    steps = entry["cumulative_reward"]["steps"]
    for lengths, row in zip(
        entry["episode_lengths"], entry["cumulative_reward"]["per_seed"], strict=True
    ):
        stopped = sum(lengths)  # every seed reached 3 episodes within 2000 steps
        assert all((v is None) == (t > stopped) for t, v in zip(steps, row, strict=True))
        values = [v for v in row if v is not None]
        assert values == sorted(values) and values[-1] <= 3.0


def _fake_results(optimal):
    summary = {
        "final_episode_length": 16.0,
        "final_episode_return": 1.0,
        "seeds_near_optimal": 2,
        "episodes_to_near_optimal": 9.0,
        "steps_to_near_optimal": 800.0,
        "cumulative_reward": 10.0,
        "near_optimal_threshold": 18.2,
    }
    entry = {
        "summary": summary,
        "real_steps": 300.0,
        "planning_updates": 0.0,
        "compile_s": 1.0,
        "run_s": 0.1,
        # Seeds ran 9, 3 and 2 episodes; one stopped early.
        "episode_lengths": [[50, 40, 30, 20, 16, 15, 14, 14, 14], [60, 30, 20], [70, 40]],
        "cumulative_reward": {
            "steps": [1, 100, 200],
            "per_seed": [[0, 2, 5], [0, 1, None], [0, 1, 2]],
        },
    }
    return {
        "env": "DynaMaze" if optimal else "CartPole-v1",
        "seeds": 3,
        "budget": {"steps": 300, "episodes": None},
        "optimal_path_length": optimal,
        "agents": {"dyna_q:5": entry},
    }


def test_table_drops_the_final_return_on_mazes_only():
    assert "final ret" not in compare.format_table(_fake_results(14))
    assert "final len" in compare.format_table(_fake_results(14))
    assert "final ret" in compare.format_table(_fake_results(None))


def test_curves_cover_every_episode_some_seed_reached(tmp_path):
    mean, half, count = plots.mean_band(_fake_results(14)["agents"]["dyna_q:5"]["episode_lengths"])
    assert len(mean) == 9 and list(count[:3]) == [3, 3, 2] and count[-1] == 1
    assert mean[0] == pytest.approx(60.0)
    path = compare.plot_curves(_fake_results(14), tmp_path / "curves.png")
    assert path.stat().st_size > 10_000


@pytest.mark.parametrize("agent", ["dqn", "dyna_dqn", "sac", "mbpo"])
def test_deep_agents_take_the_step_budget(agent):
    from mbrl_jax import envs
    from mbrl_jax.experiments import registry

    name = "Pendulum-v1" if agent in ("sac", "mbpo") else "CartPole-v1"
    env, params = envs.make(name)
    budget = registry.Budget(num_steps=3000)
    run = registry.build(agent, env, params, budget, registry.CommonSettings())
    assert "3000 real steps" in run.description
    assert run.real_steps is None  # the budget's num_steps, exactly
    assert run.chunked.total_steps == 3000
