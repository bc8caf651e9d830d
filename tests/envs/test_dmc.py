"""The DM Control Suite wrapper (MuJoCo Playground): shapes, jit, automatic
reset at the time limit, bad actions. Skipped unless ``mujoco_playground`` is
installed."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_jax.envs import dmc


def test_names_and_missing_extra(monkeypatch):
    assert dmc.registered_names() == [
        "cartpole_swingup-dmc",
        "pendulum_swingup-dmc",
        "cheetah_run-dmc",
    ]
    monkeypatch.setattr(dmc, "dmc_available", lambda: False)
    with pytest.raises(ValueError, match="needs MuJoCo Playground"):
        dmc.DMCEnv("cartpole_swingup-dmc")


@pytest.fixture(scope="module")
def cartpole():
    pytest.importorskip("mujoco_playground")
    return dmc.make_dmc("cartpole_swingup-dmc")


def _rollout(env, params, key, action, steps):
    def step(carry, key):
        obs, state = carry
        out = env.step(key, state, action, params)
        return (out[0], out[1]), out

    obs, state = env.reset(key, params)
    _, outs = jax.lax.scan(step, (obs, state), jax.random.split(key, steps))
    return obs, outs


def test_api_shapes_and_jit(cartpole):
    env, params = cartpole
    assert env.name == "cartpole_swingup-dmc"
    assert params.max_steps_in_episode == 1000
    space = env.action_space(params)
    assert space.shape == (1,) and float(space.low) == -1.0 and float(space.high) == 1.0
    assert env.observation_space(params).shape == (5,)
    obs, state = jax.jit(env.reset)(jax.random.key(0), params)
    assert obs.shape == (5,) and obs.dtype == jnp.float32
    step = jax.jit(env.step)
    obs, state, reward, terminated, truncated, info = step(
        jax.random.key(1), state, jnp.ones(1), params
    )
    assert obs.shape == (5,) and reward.shape == () and reward.dtype == jnp.float32
    assert not bool(terminated) and not bool(truncated)
    assert info["final_observation"].shape == (5,)
    assert 0.0 <= float(reward) <= 1.0


def test_time_limit_is_a_truncation_with_auto_reset(cartpole):
    env, params = cartpole
    params = dataclasses.replace(params, max_steps_in_episode=5)
    run = jax.jit(lambda key, a: _rollout(env, params, key, a, 12))
    _, (obs, state, reward, terminated, truncated, info) = run(jax.random.key(2), jnp.ones(1))
    np.testing.assert_array_equal(np.flatnonzero(np.asarray(truncated)), [4, 9])
    assert not np.any(np.asarray(terminated))
    np.testing.assert_array_equal(np.asarray(state.time)[[4, 9]], 0)
    # The final observation is the pre-reset one; the returned obs is a fresh start.
    final = np.asarray(info["final_observation"])
    assert not np.allclose(final[4], np.asarray(obs)[4])
    _, (_, _, reward, terminated, _, _) = run(jax.random.key(3), jnp.array([jnp.nan]))
    assert np.all(np.asarray(terminated)) and np.all(np.isnan(np.asarray(reward)))
    with pytest.raises(ValueError, match="actions must be 1 finite numbers"):
        env.check_action(np.array([np.inf]))


def test_action_repeat_two_spans_the_same_episode(cartpole):
    env, params = cartpole
    repeated = dmc.DMCEnv("cartpole_swingup-dmc", action_repeat=2)
    params2 = repeated.default_params
    assert params2.max_steps_in_episode == 500 and repeated.name == env.name
    run = jax.jit(
        lambda e, p, n: _rollout(e, p, jax.random.key(4), jnp.full(1, 0.8), n),
        static_argnums=(0, 2),
    )
    _, (obs, _, reward, _, truncated, _) = run(env, params, 1000)
    _, (obs2, _, reward2, _, truncated2, _) = run(repeated, params2, 500)
    # One episode of 1,000 simulator steps either way, with the same return.
    assert int(np.flatnonzero(np.asarray(truncated2))[0]) == 499
    assert int(np.flatnonzero(np.asarray(truncated))[0]) == 999
    np.testing.assert_allclose(np.asarray(obs2)[:100], np.asarray(obs)[1:200:2], atol=1e-4)
    np.testing.assert_allclose(float(reward2.sum()), float(reward.sum()), rtol=1e-4)
