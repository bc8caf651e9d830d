"""SAC: config checks, the squashed Gaussian's log-density, one update's effects, the run."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_jax import envs
from mbrl_jax.agents import sac
from mbrl_jax.core.chunked import run_units
from mbrl_jax.core.types import Transition
from tests.agents.chunking import chunk_by_chunk

SMALL = sac.Config(
    num_steps=600, hidden_sizes=(32, 32), batch_size=32, learning_starts=100, buffer_size=600
)
OBS_DIM, ACTION_DIM, BATCH = 3, 2, 64


@pytest.mark.parametrize(
    "field, value",
    [
        ("num_steps", 0),
        ("updates_per_step", 0),
        ("tau", 0.0),
        ("tau", 1.5),
        ("tau", float("nan")),
        ("discount", float("nan")),
        ("discount", 1.01),
        ("actor_lr", float("inf")),
        ("critic_lr", 0.0),
        ("init_alpha", -1.0),
        ("target_entropy", float("nan")),
        ("batch_size", 2.5),
        ("learning_starts", -1),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        sac.Config(**{field: value})


def test_config_rejects_bad_hidden_sizes_and_a_buffer_smaller_than_a_batch():
    with pytest.raises(ValueError, match="hidden_sizes"):
        sac.Config(hidden_sizes=())
    with pytest.raises(ValueError, match=r"hidden_sizes\[1\]"):
        sac.Config(hidden_sizes=(64, 0))
    with pytest.raises(ValueError, match="buffer_size"):
        sac.Config(buffer_size=10, batch_size=32)
    assert sac.Config(hidden_sizes=[8, 8]).hidden_sizes == (8, 8)


def test_discrete_actions_and_state_index_observations_are_refused():
    env, params = envs.make("CartPole-v1")
    with pytest.raises(ValueError, match=r"SAC needs continuous \(Box\) actions"):
        sac.make_train(SMALL, env, params)
    maze, maze_params = envs.make("DynaMaze")
    with pytest.raises(ValueError, match="SAC needs vector observations"):
        sac.make_train(SMALL, maze, maze_params)


def test_squashed_gaussian_log_prob_matches_a_hand_computation():
    mean = jnp.array([[0.3, -0.5], [1.2, 0.0]])
    log_std = jnp.array([[-0.2, 0.4], [-1.0, 0.1]])

    @jax.jit
    def sample(mean, log_std, key):
        dist = sac.squashed_gaussian(mean, log_std)
        action, log_prob = dist.sample_and_log_prob(seed=key)
        return action, log_prob, dist.log_prob(action)

    action, log_prob, log_prob_again = sample(mean, log_std, jax.random.key(0))
    assert action.shape == (2, 2) and log_prob.shape == (2,)
    a = np.asarray(action, np.float64)
    u = np.arctanh(a)
    m, s = np.asarray(mean, np.float64), np.exp(np.asarray(log_std, np.float64))
    gauss = (-0.5 * ((u - m) / s) ** 2 - np.log(s) - 0.5 * math.log(2 * math.pi)).sum(-1)
    expected = gauss - np.log(1.0 - np.tanh(u) ** 2).sum(-1)
    np.testing.assert_allclose(np.asarray(log_prob), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(log_prob_again), expected, rtol=1e-3, atol=1e-3)


def _batch(key, done_fraction=0.2):
    k = jax.random.split(key, 5)
    return Transition(
        state=jax.random.normal(k[0], (BATCH, OBS_DIM)),
        action=jax.random.uniform(k[1], (BATCH, ACTION_DIM), minval=-2.0, maxval=2.0),
        reward=jax.random.normal(k[2], (BATCH,)),
        next_state=jax.random.normal(k[3], (BATCH, OBS_DIM)),
        done=jax.random.uniform(k[4], (BATCH,)) < done_fraction,
    )


CONFIG = sac.Config(num_steps=1000, hidden_sizes=(32, 32), critic_lr=3e-3)


@pytest.fixture(scope="module")
def learner():
    init = jax.jit(lambda key: sac.init_sac(CONFIG, key, OBS_DIM, ACTION_DIM, -2.0, 2.0))
    return init(jax.random.key(0)), jax.jit(lambda s, k, b: sac.update(CONFIG, s, k, b))


def test_updates_on_a_fixed_batch_lower_the_critic_loss(learner):
    state, update = learner
    batch = _batch(jax.random.key(1))

    losses = []
    for _ in range(50):
        state, metrics = update(state, jax.random.key(2), batch)  # one key: the same noise
        losses.append(float(metrics["critic_loss"]))
    losses = np.array(losses)
    assert np.all(np.isfinite(losses)) and int(state.steps) == 50
    assert losses[-5:].mean() < 0.6 * losses[:5].mean()
    assert set(metrics) == set(sac.METRIC_NAMES)


def test_target_critics_move_by_tau_towards_the_updated_critics(learner):
    state, update = learner
    offset = jax.jit(lambda p: jax.tree.map(lambda x: x + 0.1, p))
    state = state.replace(target_critic_params=offset(state.critic_params))
    new, _ = update(state, jax.random.key(3), _batch(jax.random.key(4)))
    tau = CONFIG.tau
    leaves = lambda tree: [np.asarray(x, np.float64) for x in jax.tree.leaves(tree)]  # noqa: E731
    expected = [
        (1 - tau) * old + tau * online
        for old, online in zip(
            leaves(state.target_critic_params), leaves(new.critic_params), strict=True
        )
    ]
    for got, want in zip(leaves(new.target_critic_params), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    moved = [
        np.abs(a - b).max()
        for a, b in zip(leaves(new.critic_params), leaves(state.critic_params), strict=True)
    ]
    assert max(moved) > 0  # the critics did change


def test_temperature_falls_when_entropy_is_above_target_and_rises_below(learner):
    state, update = learner
    batch = _batch(jax.random.key(5))
    new, metrics = update(state, jax.random.key(6), batch)
    assert float(metrics["alpha"]) == pytest.approx(1.0)
    assert float(metrics["entropy"]) > -ACTION_DIM  # a fresh policy is broad
    assert float(new.log_alpha) < float(state.log_alpha)
    # Log std pinned at its floor (-5): entropy far below the target -A.
    params = state.actor_params["params"]
    head = {
        "kernel": jnp.zeros_like(params["Dense_3"]["kernel"]),
        "bias": jnp.full_like(params["Dense_3"]["bias"], -10.0),
    }
    narrow = state.replace(actor_params={"params": {**params, "Dense_3": head}})
    new, metrics = update(narrow, jax.random.key(6), batch)
    assert float(metrics["entropy"]) < -ACTION_DIM
    assert float(new.log_alpha) > float(state.log_alpha)


def test_terminal_transitions_do_not_bootstrap(learner):
    state, update = learner
    batch = _batch(jax.random.key(7))
    terminal = batch._replace(done=jnp.ones(BATCH, bool))
    _, metrics = update(state, jax.random.key(8), terminal)
    # Hand-computed: with every step terminal the target is the reward alone.
    critic = sac.Critic(CONFIG.hidden_sizes)
    q = jax.vmap(critic.apply, in_axes=(0, None, None))(
        state.critic_params,
        batch.state,
        batch.action / 2.0,  # bounds [-2, 2] -> [-1, 1]
    )
    expected = 0.5 * np.mean((np.asarray(q) - np.asarray(batch.reward)) ** 2, axis=-1).sum()
    assert float(metrics["critic_loss"]) == pytest.approx(expected, rel=1e-5)
    _, metrics = update(state, jax.random.key(8), batch._replace(done=jnp.zeros(BATCH, bool)))
    assert float(metrics["critic_loss"]) != pytest.approx(expected, rel=1e-2)


def test_act_stays_in_the_bounds_and_is_deterministic_on_request(learner):
    state, _ = learner
    obs = jax.random.normal(jax.random.key(9), (100, OBS_DIM)) * 10
    act = jax.jit(sac.act, static_argnums=(0, 4))
    sampled = act(CONFIG, state, jax.random.key(10), obs, False)
    greedy = act(CONFIG, state, jax.random.key(11), obs, True)
    again = act(CONFIG, state, jax.random.key(12), obs, True)
    assert sampled.shape == (100, ACTION_DIM)
    assert float(jnp.abs(sampled).max()) <= 2.0 and float(jnp.abs(greedy).max()) <= 2.0
    np.testing.assert_array_equal(np.asarray(greedy), np.asarray(again))
    assert not np.allclose(np.asarray(sampled), np.asarray(greedy))


def test_run_stores_truncated_steps_as_not_terminal_and_keeps_the_final_observation():
    env, params = envs.make("Pendulum-v1")
    # 20 units of 20 steps, 10 in finish; no updates (nothing to learn here, and
    # less to compile).
    config = dataclasses.replace(SMALL, num_steps=410, learning_starts=411)
    chunked = sac.make_chunked(config, env, params)
    assert (chunked.num_units, chunked.unit_steps, chunked.final_steps) == (20, 20, 10)

    def run(key):
        state, outs = run_units(chunked, chunked.num_units)(chunked.init(key))
        return chunked.finish(state, outs)

    state, out = jax.jit(run)(jax.random.key(0))
    assert out.metrics.reward.shape == (410,)
    done = np.asarray(out.metrics.done)
    assert np.flatnonzero(done).tolist() == [199, 399]  # the 200-step time limit
    data = state.buffer.data
    assert int(state.buffer.size) == 410 and not np.asarray(data.done).any()  # not terminal
    next_state, obs = np.asarray(data.next_state), np.asarray(data.state)
    np.testing.assert_array_equal(next_state[:199], obs[1:200])
    assert not np.allclose(next_state[199], obs[200])  # pre-reset observation, not the reset one
    assert int(out.metrics.q_updates.sum()) == 0 and int(out.agent.steps) == 0
    result = jax.jit(chunked.evaluate, static_argnums=2)(state, jax.random.key(1), 3)
    assert np.asarray(result.lengths).tolist() == [200] * 3
    assert np.all(np.asarray(result.returns) < 0) and np.all(np.isfinite(result.returns))


def test_train_runs_vmapped_over_seeds_without_recompiling():
    env, params = envs.make("Pendulum-v1")
    train = jax.jit(jax.vmap(sac.make_train(SMALL, env, params)))
    out = train(jax.random.split(jax.random.key(0), 2))
    out2 = train(jax.random.split(jax.random.key(1), 2))
    assert train._cache_size() == 1
    m = out.metrics
    assert m.reward.shape == (2, 600) and m.done.shape == (2, 600)
    assert np.asarray(m.done).sum(1).tolist() == [3, 3]
    for leaf in jax.tree.leaves(out) + jax.tree.leaves(out2):
        assert np.all(np.isfinite(np.asarray(leaf)))
    assert not np.allclose(np.asarray(m.reward[0]), np.asarray(m.reward[1]))
    # Updates start once learning_starts transitions are stored.
    q_updates = np.asarray(m.q_updates)
    assert q_updates[:, :99].sum() == 0 and np.all(q_updates[:, 99:] == 1)
    assert np.asarray(out.agent.steps).tolist() == [501, 501]
    # Actions of the run stay in Pendulum's [-2, 2]: the reward's torque cost is bounded.
    assert float(np.asarray(m.reward).min()) >= -(math.pi**2 + 0.1 * 64 + 0.001 * 4) - 1e-4


def test_run_driven_chunk_by_chunk_equals_the_one_call_train_bitwise():
    env, params = envs.make("Pendulum-v1")
    chunked = sac.make_chunked(SMALL, env, params)
    assert chunked.num_units == 20
    key = jax.random.key(0)
    whole = jax.jit(sac.make_train(SMALL, env, params))(key)
    pieces = chunk_by_chunk(chunked, key, (7, 13))
    assert jax.tree.structure(whole) == jax.tree.structure(pieces)
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(pieces), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert int(whole.agent.steps) > 0  # updates ran: the comparison covers learning
