"""The helpers of examples/dyna_dqn_ablation.py: first hits and the variants' settings."""

import importlib.util
from pathlib import Path

import numpy as np

from mbrl_jax import envs
from mbrl_jax.experiments.registry import Budget

PATH = Path(__file__).resolve().parents[2] / "examples" / "dyna_dqn_ablation.py"
spec = importlib.util.spec_from_file_location("dyna_dqn_ablation", PATH)
example = importlib.util.module_from_spec(spec)
spec.loader.exec_module(example)


def test_first_hits_per_seed():
    returns = np.array([[100.0, 480.0, 200.0], [100.0, 200.0, 300.0], [475.0, 0.0, 500.0]])
    assert example.first_hits([2500, 5000, 7500], returns) == [5000, None, 2500]


def test_every_variant_builds_with_its_overrides():
    env, params = envs.make("CartPole-v1")
    for name, (agent, steps, over, dqn_over, *_) in example.VARIANTS.items():
        config = example.variant_config(name, Budget(num_steps=steps))
        learner = config.dqn if agent == "dyna_dqn" else config
        assert learner.num_steps == steps
        assert all(getattr(learner, k) == v for k, v in dqn_over.items())
        assert all(getattr(config, k) == v for k, v in over.items())
        run = example.variant_run(name)(None, env, params, Budget(num_steps=steps), None)
        assert run.description == name
        assert run.chunked is not None
        # The budget is the variant's real steps (chunks of whole units).
        assert run.chunked.initial_steps + run.chunked.num_units * run.chunked.unit_steps == steps
        # Whole evaluation intervals: 2,500 steps, 500 in the short runs.
        assert steps % example.eval_every(name) == 0
        assert example.eval_every(name) == (500 if name.startswith("f_") else 2500)
    assert {a for a, *_ in example.VARIANTS.values()} == {"dqn", "dyna_dqn"}
