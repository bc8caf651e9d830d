"""The Brax wrapper: the missing-extra message always; the API, automatic reset,
truncation, bad actions, known task functions and an agent's run when Brax is
installed (``pip install -e ".[brax]"``; skipped otherwise)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_jax import envs
from mbrl_jax.envs import brax_env


def test_brax_names_are_listed_and_need_the_extra(monkeypatch):
    assert {"inverted_pendulum-brax", "hopper-brax", "halfcheetah-brax"} <= set(envs.names())
    monkeypatch.setattr(brax_env, "brax_available", lambda: False)
    with pytest.raises(ValueError, match=r"needs Brax, which is not installed: pip install -e"):
        envs.make("hopper-brax")
    with pytest.raises(ValueError, match="unknown environment 'walker-brax'"):
        envs.make("walker-brax")


def test_compare_names_the_missing_extra_in_one_line(monkeypatch, tmp_path, capsys):
    from mbrl_jax import cli

    monkeypatch.setattr(brax_env, "brax_available", lambda: False)
    argv = ["compare", "--env", "hopper-brax", "--agents", "sac", "--out", str(tmp_path)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and '.[brax]"' in err[0] and "hopper-brax" in err[0]


@pytest.fixture(scope="module")
def pendulum():
    pytest.importorskip("brax")
    return envs.make("inverted_pendulum-brax", max_steps_in_episode=50)


def _rollout(env, params, key, action, steps):
    def step(carry, key):
        obs, state = carry
        out = env.step(key, state, action, params)
        return (out[0], out[1]), out

    obs, state = env.reset(key, params)
    _, outs = jax.lax.scan(step, (obs, state), jax.random.split(key, steps))
    return obs, outs


def test_api_auto_reset_and_the_known_termination_agree(pendulum):
    env, params = pendulum
    assert env.name == "inverted_pendulum-brax"
    assert env.action_space(params).shape == (1,)
    assert env.observation_space(params).shape == (4,)
    run = jax.jit(lambda key, a: _rollout(env, params, key, a, 120))
    obs0, (obs, state, reward, terminated, truncated, info) = run(jax.random.key(0), jnp.ones(1))
    assert obs0.shape == (4,) and obs0.dtype == jnp.float32 and reward.dtype == jnp.float32
    np.testing.assert_array_equal(reward, 1.0)
    # Pushing one way topples the pole: episodes end by termination, each
    # followed by a fresh start (time 0 after the reset).
    ends = np.flatnonzero(np.asarray(terminated))
    assert ends.size >= 2 and not np.any(np.asarray(truncated))
    np.testing.assert_array_equal(np.asarray(state.time)[ends], 0)
    final = np.asarray(info["final_observation"])
    assert np.all(np.abs(final[ends, 1]) > 0.2)
    np.testing.assert_allclose(np.abs(np.asarray(obs)[ends]), 0.0, atol=0.011)
    # The registered termination function matches the environment's.
    task = envs.task_functions(env)
    np.testing.assert_array_equal(task.termination_fn(jnp.asarray(final)), np.asarray(terminated))
    np.testing.assert_array_equal(task.reward_fn(obs, jnp.zeros((120, 1)), final), reward)


def test_time_limit_is_a_truncation_and_bad_actions_end_the_episode(pendulum):
    env, params = pendulum
    params = dataclasses.replace(params, max_steps_in_episode=5)
    run = jax.jit(lambda key, a: _rollout(env, params, key, a, 12))
    _, (_, state, reward, terminated, truncated, _) = run(jax.random.key(1), jnp.zeros(1))
    np.testing.assert_array_equal(np.flatnonzero(np.asarray(truncated)), [4, 9])
    assert not np.any(np.asarray(terminated))
    _, (_, _, reward, terminated, _, _) = run(jax.random.key(1), jnp.array([jnp.nan]))
    assert np.all(np.asarray(terminated)) and np.all(np.isnan(np.asarray(reward)))
    with pytest.raises(ValueError, match="actions must be 1 finite numbers"):
        env.check_action(np.array([np.inf]))


def test_action_repeat_sums_rewards_and_stops_at_the_termination(pendulum):
    from mbrl_jax.envs.brax_env import BraxEnv

    env, params = pendulum
    repeated = BraxEnv("inverted_pendulum", action_repeat=2)
    assert repeated.action_repeat == 2 and env.action_repeat == 1
    assert repeated.default_params.max_steps_in_episode == 500
    assert BraxEnv("inverted_pendulum", action_repeat=3).default_params.max_steps_in_episode == 334
    params2 = dataclasses.replace(params, max_steps_in_episode=25)
    key = jax.random.key(3)
    _, (obs, _, reward, terminated, _, info) = jax.jit(lambda a: _rollout(env, params, key, a, 40))(
        jnp.ones(1)
    )
    _, (obs2, _, reward2, terminated2, _, info2) = jax.jit(
        lambda a: _rollout(repeated, params2, key, a, 20)
    )(jnp.ones(1))
    end = int(np.flatnonzero(np.asarray(terminated))[0])  # the first episode's last step
    end2 = end // 2  # the agent step that holds simulator step `end`
    assert bool(terminated2[end2]) and not np.any(np.asarray(terminated2[:end2]))
    # Every agent step before the end is two simulator steps: same states, rewards summed.
    np.testing.assert_allclose(obs2[:end2], obs[1:end:2][:end2], atol=1e-5)
    np.testing.assert_array_equal(reward2[:end2], 2.0)
    # The last agent step counts only the simulator steps up to the termination.
    assert float(reward2[end2]) == (end % 2) + 1
    np.testing.assert_allclose(
        info2["final_observation"][end2], info["final_observation"][end], atol=1e-5
    )
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="action_repeat must be an integer >= 1"):
            BraxEnv("inverted_pendulum", action_repeat=bad)


def test_make_takes_an_action_repeat_for_simulators_only(pendulum):
    env, params = envs.make("inverted_pendulum-brax", action_repeat=2)
    assert env.action_repeat == 2 and params.max_steps_in_episode == 500
    env, params = envs.make("inverted_pendulum-brax", action_repeat=4, max_steps_in_episode=30)
    assert env.action_repeat == 4 and params.max_steps_in_episode == 30
    assert envs.make("inverted_pendulum-brax")[0].action_repeat == 1
    with pytest.raises(ValueError, match="action_repeat must be an integer >= 1"):
        envs.make("inverted_pendulum-brax", action_repeat=0)


def test_make_refuses_an_action_repeat_elsewhere():
    for name in ("CartPole-v1", "DynaMaze", "ContinuousCartPole"):
        with pytest.raises(ValueError, match=r"^action_repeat: only simulator environments"):
            envs.make(name, action_repeat=2)
    with pytest.raises(ValueError, match="unknown environment 'walker-brax'"):
        envs.make("walker-brax", action_repeat=2)


@pytest.mark.slow  # SAC on a Brax task compiles for ~40 s
def test_sac_runs_on_a_brax_task_vmapped_over_seeds(pendulum):
    from mbrl_jax.agents import sac

    env, params = pendulum
    config = sac.Config(
        num_steps=300, hidden_sizes=(16, 16), batch_size=16, learning_starts=100, buffer_size=300
    )
    train = jax.jit(jax.vmap(sac.make_train(config, env, params)))
    out = train(jax.random.split(jax.random.key(0), 2))
    reward = np.asarray(out.metrics.reward)
    assert reward.shape == (2, 300) and np.all(reward == 1.0)
    assert np.asarray(out.metrics.done).sum() > 0  # episodes ended and restarted
