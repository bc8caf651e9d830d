import dataclasses

import jax
import numpy as np
import pytest

from mbrl_jax import cli, envs
from mbrl_jax.agents import pets
from mbrl_jax.envs import TaskFunctions
from mbrl_jax.models import EnsembleConfig
from mbrl_jax.planners.shooting import MPCConfig

SMALL = pets.Config(
    num_trials=2,
    trial_length=40,
    num_epochs=3,
    model=EnsembleConfig(
        ensemble_size=2, num_elites=2, hidden_size=32, num_layers=2, batch_size=32
    ),
    planner=MPCConfig(
        method="cem", horizon=5, population=16, num_elites=4, num_iterations=2, num_particles=2
    ),
)


@pytest.mark.parametrize("name", ["ContinuousCartPole", "CartPole-v1", "Pendulum-v1"])
def test_pets_runs_on_each_env_and_does_not_recompile(name):
    env, params = envs.make(name)
    train = jax.jit(pets.make_train(SMALL, env, params))
    out = train(jax.random.key(0))
    train(jax.random.key(1))
    assert train._cache_size() == 1
    assert out.trial_returns.shape == (2,) and out.val_loss.shape == (2, 2)
    assert out.step_rewards.shape == (2, 40)
    np.testing.assert_allclose(
        np.asarray(out.step_rewards.sum(-1)), np.asarray(out.trial_returns), rtol=1e-5
    )
    # The step stream of the TrainOutput convention: active steps are the
    # trials' first episodes, done marks their ends.
    assert out.metrics.reward.shape == (80,)
    assert int(out.metrics.active.sum()) == int(out.trial_lengths.sum())
    assert int(out.metrics.done.sum()) == 2
    assert bool(np.all(np.isfinite(np.asarray(out.val_loss))))
    assert 1 <= int(out.trial_lengths[1]) <= 40


@pytest.mark.slow
def test_pets_solves_continuous_cartpole_at_the_first_mpc_trial():
    env, params = envs.make("ContinuousCartPole")
    train = jax.jit(jax.vmap(pets.make_train(pets.Config(num_trials=2), env, params)))
    out = train(jax.random.split(jax.random.key(0), 2))
    returns = np.asarray(out.trial_returns)
    assert returns[:, 1].mean() >= 190.0
    assert returns[:, 0].mean() < 100.0  # random actions do not balance


@pytest.mark.parametrize("name", ["ContinuousCartPole", "CartPole-v1", "Pendulum-v1"])
def test_presets_build_for_their_env(name):
    env, params = envs.make(name)
    config = pets.preset(name)
    assert config.trial_length == int(params.max_steps_in_episode)
    pets.make_train(config, env, params)  # discrete CartPole-v1 needs CEM, not iCEM
    assert (config.planner.method == "cem") == (name == "CartPole-v1")


def test_pets_adds_the_terminal_value_to_planned_returns():
    env, params = envs.make("ContinuousCartPole")
    config = dataclasses.replace(SMALL, state_cost=0.0)
    train = jax.jit(
        pets.make_train(config, env, params, terminal_value_fn=lambda obs: 1000.0 + 0 * obs[:, 0])
    )
    predicted = np.asarray(train(jax.random.key(0)).predicted_return)
    assert predicted[0].max() == 0.0  # the random trial plans nothing
    assert predicted[1, 0] >= 1000.0  # horizon 5: the best plan survives and gets the value


@pytest.mark.slow  # three PETS compiles; the terminal-value test covers the cost path in CI
def test_pets_state_cost_shapes_the_planning_reward_only():
    env, params = envs.make("ContinuousCartPole")
    outs = {}
    for name, cost in (("none", (0.0, 0.0)), ("step", (10.0, 0.0)), ("end", (0.0, 10.0))):
        config = dataclasses.replace(SMALL, state_cost=cost[0], terminal_cost=cost[1])
        outs[name] = jax.jit(pets.make_train(config, env, params))(jax.random.key(0))
    # Without a cost, the best plan survives horizon 5 with reward 1 per step.
    assert outs["none"].predicted_return[1, 0] == 5.0
    # The cost lowers the planned objective, per step more than at the end ...
    step, end = (
        float(outs["step"].predicted_return[1, 0]),
        float(outs["end"].predicted_return[1, 0]),
    )
    assert step < end < 5.0
    # ... but the reported returns stay the environment's: one per step alive.
    for out in outs.values():
        assert float(out.trial_returns[1]) == float(out.trial_lengths[1])


def test_pets_bad_config():
    with pytest.raises(ValueError, match="random_trials"):
        pets.Config(num_trials=1)
    with pytest.raises(ValueError, match="propagation"):
        pets.Config(propagation="ts2")
    with pytest.raises(ValueError, match="state_cost"):
        pets.Config(state_cost=-1.0)
    with pytest.raises(ValueError, match="num_particles"):
        dataclasses.replace(SMALL, model=dataclasses.replace(SMALL.model, ensemble_size=3))
    with pytest.raises(ValueError, match="pets.Config.model"):
        pets.Config(model=MPCConfig())
    with pytest.raises(ValueError, match="Config.num_epochs"):
        pets.Config(num_epochs=2.5)
    env, params = envs.make("DynaMaze")
    with pytest.raises(ValueError, match="vector observation"):
        pets.make_train(SMALL, env, params)


def test_pets_learns_reward_and_termination_without_task_functions():
    env, params = envs.make("ContinuousCartPole")
    train = jax.jit(pets.make_train(SMALL, env, params, task=TaskFunctions()))
    out = train(jax.random.key(0))
    # The learned heads are in the model: its output layer has obs + reward units.
    kernel = out.ensemble.params["params"]["Dense_2"]["kernel"]
    assert kernel.shape[-1] == 5
    assert bool(np.all(np.isfinite(np.asarray(out.trial_returns))))


@pytest.mark.slow  # compare wiring of pets is tested by the registry tests
def test_pets_in_compare(tmp_path, capsys):
    code = cli.main(
        [
            "compare",
            "--env",
            "ContinuousCartPole",
            "--agents",
            "pets",
            "--seeds",
            "1",
            "--episodes",
            "2",
            "--steps",
            "30",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    import json

    entry = json.loads((tmp_path / "results.json").read_text())["agents"]["pets"]
    assert len(entry["episode_returns"][0]) == 2
