"""The policy-search agents in the comparison runner: budgets in real steps, labels,
and one-line refusals (built only: their learning is tested in tests/agents)."""

import pytest

from mbrl_jax import envs
from mbrl_jax.experiments.registry import Budget, CommonSettings, build


def _build(spec, env_name, steps, episodes=None, planner="shooting"):
    env, params = envs.make(env_name)
    return build(spec, env, params, Budget(steps, episodes), CommonSettings(planner=planner))


@pytest.mark.parametrize("spec", ["pets:gradient", "pets:cem-gradient", "pets"])
def test_pets_planner_specs_count_real_steps(spec):
    run = _build(spec, "Pendulum-v1", 1000, planner="gradient")
    assert run.real_steps == 1000  # 5 trials x 200
    # pets:PLANNER wins over --planner; plain pets takes --planner.
    method = "cem_gradient" if "cem" in spec else "gradient"
    assert f", {method} (" in run.description
    assert "Adam steps" in run.description


@pytest.mark.parametrize("spec", ["policy_through_model", "policy_through_model:cma_es"])
def test_policy_through_model_counts_real_steps(spec):
    run = _build(spec, "Pendulum-v1", 1000)
    assert run.real_steps == 1000 and run.chunked.num_units == 4  # a random trial first
    assert ("cma_es" in run.description) == spec.endswith("cma_es")


def test_world_models_counts_whole_rounds():
    run = _build("world_models", "CartPole-v1", 1000)
    assert run.real_steps == 999  # three rounds of 333 steps
    assert run.chunked.num_units == 3 and run.chunked.unit_steps == 333


@pytest.mark.parametrize(
    ("spec", "env_name", "steps", "episodes", "message"),
    [
        ("policy_through_model:adam", "Pendulum-v1", 1000, None, "optimizer must be one of"),
        ("policy_through_model", "Pendulum-v1", 300, None, "at least 2 trials"),
        ("policy_through_model", "CartPole-v1", 1000, None, "continuous"),
        ("world_models:3", "CartPole-v1", 1000, None, "takes no argument"),
        ("world_models", "CartPole-v1", 1000, 5, "--steps"),
        ("world_models", "CartPole-v1", 50, None, "num_steps"),
    ],
)
def test_bad_specs_are_one_line_errors(spec, env_name, steps, episodes, message):
    with pytest.raises(ValueError, match=message) as err:
        _build(spec, env_name, steps, episodes)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("spec", ["dreamer", "dreamer:states", "dreamer:pixels"])
def test_dreamer_counts_real_steps_of_all_its_environments(spec):
    run = _build(spec, "CartPole-v1", 1001)
    assert run.real_steps == 1000 and run.parallel_envs == 4  # 4 environments x 250
    assert run.chunked.unit_steps == 32 and run.chunked.total_steps == 1000
    assert ("pixels" in run.description) == spec.endswith("pixels")


@pytest.mark.parametrize(
    ("spec", "env_name", "steps", "episodes", "message"),
    [
        ("dreamer:rgb", "CartPole-v1", 1000, None, "states or pixels"),
        ("dreamer", "CartPole-v1", 1000, 5, "--steps"),
        ("dreamer", "CartPole-v1", 16, None, "--steps >= 32"),
        ("dreamer", "DynaMaze", 1000, None, "discrete index"),
        ("dreamer:pixels", "Acrobot-v1", 1000, None, "no pixel renderer"),
    ],
)
def test_bad_dreamer_specs_are_one_line_errors(spec, env_name, steps, episodes, message):
    with pytest.raises(ValueError, match=message) as err:
        _build(spec, env_name, steps, episodes)
    assert "\n" not in str(err.value)
