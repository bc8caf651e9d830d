"""The helpers of examples/model_based_vs_model_free.py: steps to target and PETS's curve."""

import importlib.util
import json
from pathlib import Path

import numpy as np

PATH = Path(__file__).resolve().parents[2] / "examples" / "model_based_vs_model_free.py"
spec = importlib.util.spec_from_file_location("model_based_vs_model_free", PATH)
example = importlib.util.module_from_spec(spec)
spec.loader.exec_module(example)


def test_first_reaching_and_training_steps_to_target():
    assert example.first_reaching([100, 200, 300], [-900.0, -150.0, -120.0], -200.0) == 200.0
    assert example.first_reaching([100, 200], [-900.0, None], -200.0) is None
    returns = np.array([10.0] * 9 + [500.0] * 12)
    lengths = np.array([10] * 9 + [500] * 12)
    # One short episode in the window keeps the mean at 451: the first window
    # of ten long ones ends the 19th episode, after 9 x 10 + 10 x 500 steps.
    assert example.training_steps_to_target(returns, lengths, 475.0) == 90 + 10 * 500
    assert example.training_steps_to_target(returns[:9], lengths[:9], 0.0) is None


def test_pets_curve_reads_examples_pets_json(tmp_path):
    saved = {
        "envs": {
            "Pendulum-v1": {
                "trials": 3,
                "trial_length": 200,
                "planner": "icem",
                "population": 100,
                "horizon": 25,
                "returns": [[-1500.0, -300.0, -150.0], [-1400.0, -190.0, -120.0]],
                "wall_s_all_seeds_including_compile": 90.0,
            }
        }
    }
    path = tmp_path / "pets.json"
    path.write_text(json.dumps(saved))
    curve = example.pets_curve("Pendulum-v1", path)
    assert curve["eval_steps"] == [200, 400, 600]
    assert curve["eval_returns"] == [[-1500.0, -300.0, -150.0], [-1400.0, -190.0, -120.0]]
    np.testing.assert_allclose(curve["wall_s"], [30.0, 60.0, 90.0])
    summary = example.summarize(curve, -200.0)
    assert summary["steps_to_target_eval"] == [600.0, 400.0]
    assert summary["seeds_reaching_target"] == 2 and summary["median_steps_to_target"] == 500.0
    assert example.pets_curve("CartPole-v1", path) is None
    assert example.pets_curve("Pendulum-v1", tmp_path / "missing.json") is None


def test_seed_by_seed_runs_merge_like_one_run(monkeypatch):
    def fake_run(env_name, agent, steps, chunks, seeds, seed=0):
        assert seeds == 1
        return {
            "agent": agent,
            "description": "d",
            "seeds": 1,
            "steps": steps,
            "eval_steps": [100, 200],
            "eval_returns": [[-1000.0 + seed, -150.0 - seed]],
            "wall_s": [10.0, 20.0],
            "compile_s": 5.0,
            "run_s": 15.0,
            "episode_returns": [[-900.0 - seed]],
            "episode_lengths": [[200]],
        }

    monkeypatch.setattr(example, "run_agent", fake_run)
    merged = example.run_agent_seed_by_seed("Pendulum-v1", "mbpo", 200, 2, 3)
    assert merged["seeds"] == 3 and merged["seed_by_seed"]
    assert merged["eval_returns"] == [[-1000.0, -150.0], [-999.0, -151.0], [-998.0, -152.0]]
    assert merged["wall_s"] == [30.0, 60.0] and merged["run_s"] == 45.0
    assert merged["episode_returns"] == [[-900.0], [-901.0], [-902.0]]
    assert example.summarize(merged, -200.0)["steps_to_target_eval"] == [200.0] * 3


def test_seed_by_seed_extends_a_kept_run_with_the_missing_seeds(monkeypatch):
    calls = []

    def fake_run_agent(env_name, agent, steps, chunks, seeds, seed=0):
        calls.append(seed)
        return {
            "agent": agent,
            "seeds": 1,
            "steps": steps,
            "eval_steps": [100, 200],
            "eval_returns": [[float(seed), float(seed)]],
            "wall_s": [1.0, 2.0],
            "compile_s": 0.5,
            "run_s": 1.5,
            "episode_returns": [[float(seed)]],
            "episode_lengths": [[200]],
        }

    monkeypatch.setattr(example, "run_agent", fake_run_agent)
    first = example.run_agent_seed_by_seed("Pendulum-v1", "mbpo", 200, 2, 2)
    assert calls == [0, 1] and first["seeds"] == 2
    calls.clear()
    extended = example.run_agent_seed_by_seed("Pendulum-v1", "mbpo", 200, 2, 4, kept=first)
    assert calls == [2, 3]  # only the missing seeds run
    assert extended["seeds"] == 4
    assert extended["eval_returns"] == [[s, s] for s in (0.0, 1.0, 2.0, 3.0)]
    assert extended["wall_s"] == [4.0, 8.0]  # summed over the seeds
    assert extended["compile_s"] == 2.0 and extended["run_s"] == 6.0
