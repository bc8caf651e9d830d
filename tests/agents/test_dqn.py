"""DQN and neural Dyna-DQN: configs, the double-DQN target and Huber loss against
NumPy, the epsilon schedule, truncation versus termination, tiny runs."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_jax import envs
from mbrl_jax.agents import dqn, dyna_dqn
from mbrl_jax.core.chunked import run_units
from mbrl_jax.core.types import Transition
from mbrl_jax.models import EnsembleConfig
from tests.agents.chunking import chunk_by_chunk

TINY = dqn.Config(
    num_steps=320,
    hidden_sizes=(16, 16),
    batch_size=16,
    learning_starts=64,
    train_freq=16,
    gradient_steps=4,
    target_update_interval=8,
)
TINY_DYNA = dyna_dqn.Config(
    dqn=TINY,
    model=EnsembleConfig(
        ensemble_size=2, num_elites=2, hidden_size=16, num_layers=1, batch_size=32
    ),
    model_train_freq=32,
    model_epochs=1,
    model_fit_size=64,
    rollout_batch=8,
    rollout_length=2,
    model_buffer_size=64,
)


# ------------------------------------------------------------------------------ configs
@pytest.mark.parametrize(
    "field, value",
    [
        ("num_steps", 0),
        ("num_steps", 10.0),
        ("learning_rate", 0.0),
        ("learning_rate", float("nan")),
        ("discount", 1.5),
        ("discount", float("inf")),
        ("batch_size", 0),
        ("train_freq", True),
        ("target_update_interval", 0),
        ("tau", 0.0),
        ("tau", 1.1),
        ("epsilon_start", -0.1),
        ("epsilon_end", float("nan")),
        ("exploration_fraction", 2.0),
        ("huber_delta", float("inf")),
        ("max_grad_norm", 0.0),
        ("learning_starts", -1),
        ("hidden_sizes", ()),
        ("hidden_sizes", (64, 0)),
        ("hidden_sizes", [64]),
    ],
)
def test_dqn_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        dqn.Config(**{field: value})


@pytest.mark.parametrize(
    "field, value",
    [
        ("real_ratio", 1.5),
        ("real_ratio", float("nan")),
        ("rollout_length", 0),
        ("rollout_batch", 0),
        ("model_epochs", 0),
        ("model_buffer_size", 0),
        ("propagation", "mean"),
        ("model_train_freq", 100),  # not a multiple of dqn.train_freq (64)
        ("dqn", {"num_steps": 10}),
        ("model", None),
    ],
)
def test_dyna_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        dyna_dqn.Config(**{"dqn": dqn.Config(train_freq=64), "model_train_freq": 64, field: value})


def test_continuous_actions_are_refused():
    env, params = envs.make("Pendulum-v1")
    with pytest.raises(ValueError, match="DQN needs discrete actions"):
        dqn.make_train(TINY, env, params)
    with pytest.raises(ValueError, match="DQN needs discrete actions"):
        dyna_dqn.make_train(TINY_DYNA, env, params)


# ------------------------------------------------------------------ target, loss, schedule
def _numpy_q(params, obs):
    p = jax.tree.map(np.asarray, params["params"])
    h = np.maximum(obs @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"], 0.0)
    return h @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"]


def _batch_and_learner(config):
    online = dqn.init_dqn(config, jax.random.key(1), 4, 3)
    target = dqn.init_dqn(config, jax.random.key(2), 4, 3).params
    rng = np.random.default_rng(0)
    batch = Transition(
        state=rng.normal(size=(6, 4)).astype(np.float32),
        action=np.array([0, 1, 2, 0, 1, 2], np.int32),
        reward=np.array([1.0, -2.0, 0.5, 3.0, 0.0, 8.0], np.float32),
        next_state=rng.normal(size=(6, 4)).astype(np.float32),
        # A truncated step is stored with done=False: it bootstraps.
        done=np.array([False, True, False, True, False, False]),
    )
    return online.params, target, batch


@pytest.mark.parametrize("double", [True, False])
def test_td_target_matches_numpy(double):
    config = dqn.Config(hidden_sizes=(8,), discount=0.9, double_dqn=double)
    params, target_params, batch = _batch_and_learner(config)
    q_online, q_target = (
        _numpy_q(params, batch.next_state),
        _numpy_q(target_params, batch.next_state),
    )
    if double:
        v = q_target[np.arange(6), q_online.argmax(-1)]
    else:
        v = q_target.max(-1)
    expected = batch.reward + 0.9 * (1.0 - batch.done) * v
    got = jax.jit(lambda p, t, b: dqn.td_target(config, p, t, b))(params, target_params, batch)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-5)
    # Terminated rows are the reward alone; the others bootstrap.
    np.testing.assert_allclose(np.asarray(got)[batch.done], batch.reward[batch.done])
    assert np.all(np.abs(np.asarray(got) - batch.reward)[~batch.done] > 1e-4)


def test_huber_loss_matches_numpy_in_both_regimes():
    config = dqn.Config(hidden_sizes=(8,), discount=0.9, huber_delta=1.5)
    params, target_params, batch = _batch_and_learner(config)
    q_online, q_target = (
        _numpy_q(params, batch.next_state),
        _numpy_q(target_params, batch.next_state),
    )
    target = batch.reward + 0.9 * (1.0 - batch.done) * q_target[np.arange(6), q_online.argmax(-1)]
    error = _numpy_q(params, batch.state)[np.arange(6), batch.action] - target
    assert np.any(np.abs(error) < 1.5) and np.any(np.abs(error) > 1.5)
    a = np.abs(error)
    huber = np.where(a <= 1.5, 0.5 * a**2, 1.5 * (a - 0.75))
    loss, _ = dqn.dqn_loss(config, params, target_params, batch)
    np.testing.assert_allclose(float(loss), huber.mean(), rtol=1e-5)


def test_update_moves_towards_the_target_and_copies_the_target_network():
    config = dqn.Config(hidden_sizes=(8,), learning_rate=1e-2, target_update_interval=2, tau=1.0)
    params, target_params, batch = _batch_and_learner(config)
    state = dqn.DQNState(params, target_params, dqn.optimizer(config).init(params), jnp.int32(0))
    step = jax.jit(lambda s: dqn.update(config, s, None, batch))
    state1, m1 = step(state)
    assert jax.tree.all(jax.tree.map(jnp.array_equal, state1.target_params, target_params))
    state2, m2 = step(state1)
    assert float(m2.loss) < float(m1.loss)
    assert jax.tree.all(jax.tree.map(jnp.array_equal, state2.target_params, state2.params))


def test_epsilon_schedule():
    config = dqn.Config(
        num_steps=1000, epsilon_start=1.0, epsilon_end=0.1, exploration_fraction=0.5
    )
    steps = jnp.array([0, 250, 500, 900])
    np.testing.assert_allclose(
        np.asarray(dqn.epsilon_at(config, steps)), [1.0, 0.55, 0.1, 0.1], rtol=1e-6
    )
    instant = dataclasses.replace(config, exploration_fraction=0.0)
    np.testing.assert_allclose(np.asarray(dqn.epsilon_at(instant, steps)), 0.1, rtol=1e-6)


def test_act_is_greedy_at_zero_epsilon_and_uniform_at_one():
    config = dqn.Config(hidden_sizes=(8,))
    params = dqn.init_dqn(config, jax.random.key(0), 4, 3).params
    obs = jnp.ones(4)
    keys = jax.random.split(jax.random.key(1), 600)
    pick = jax.jit(jax.vmap(lambda k, e: dqn.act(config, params, k, obs, e), in_axes=(0, None)))
    best = int(jnp.argmax(dqn.q_values(config, params, obs)))
    assert np.all(np.asarray(pick(keys, 0.0)) == best)
    counts = np.bincount(np.asarray(pick(keys, 1.0)), minlength=3)
    assert counts.min() > 150


# -------------------------------------------------------------------------- whole runs
def test_truncation_bootstraps_and_termination_does_not():
    """Episodes cut at 8 steps: truncated steps are stored with done=False and
    the pre-reset observation; terminated ones with done=True."""
    env, params = envs.make("CartPole-v1")
    params = params.replace(max_steps_in_episode=8)
    config = dataclasses.replace(TINY, num_steps=64, learning_starts=64)
    chunked = dqn.make_chunked(config, env, params)

    @jax.jit
    def run(key):
        state = chunked.init(key)
        state, outs = run_units(chunked, chunked.num_units)(state)
        return chunked.finish(state, outs)

    state, out = run(jax.random.key(3))
    m, data = out.metrics, state.buffer.data
    done, terminated = np.asarray(m.done), np.asarray(m.terminated)
    truncated = done & ~terminated
    assert truncated.sum() >= 2 and terminated.sum() >= 1
    np.testing.assert_array_equal(np.asarray(data.done), terminated)
    # Within an episode next_state is the following state; at an episode's end
    # it is the pre-reset observation, not the next episode's first.
    nxt, cur = np.asarray(data.next_state)[:-1], np.asarray(data.state)[1:]
    same = np.all(nxt == cur, axis=-1)
    assert np.all(same[~done[:-1]]) and not np.any(same[done[:-1]])
    # A truncated step's next_state is still inside the track (not terminal).
    assert np.all(np.abs(np.asarray(data.next_state)[truncated][:, 2]) < 0.2095)


@pytest.mark.parametrize("agent", ["dqn", "dyna_dqn"])
def test_tiny_run_vmaps_over_seeds_without_recompiling(agent):
    env, params = envs.make("CartPole-v1")
    if agent == "dqn":
        train = jax.jit(jax.vmap(dqn.make_train(TINY, env, params)))
    else:
        train = jax.jit(jax.vmap(dyna_dqn.make_train(TINY_DYNA, env, params)))
    out = train(jax.random.split(jax.random.key(0), 2))
    train(jax.random.split(jax.random.key(1), 2))
    assert train._cache_size() == 1
    m = out.metrics
    for leaf in m:
        assert leaf.shape == (2, 320)
    assert np.all(np.isfinite(np.asarray(m.loss)))
    assert np.all(np.asarray(m.reward) == 1.0)  # CartPole pays 1 per step
    # Updates once learning starts: phases ending at steps 64, 80, ..., 320.
    assert np.all(np.asarray(m.q_updates).sum(1) == 4 * 17)
    assert np.asarray(m.loss)[:, 100:].max() > 0
    planning = np.asarray(m.planning_updates).sum(1)
    if agent == "dqn":
        assert np.all(planning == 0)
    else:
        blocks = out.blocks
        assert blocks.val_loss.shape == (2, 10, 2)
        assert np.all(np.isfinite(np.asarray(blocks.val_loss)[:, 1:]))
        imagined = np.asarray(blocks.imagined)
        assert np.all(imagined[:, :2] == 0)  # before learning_starts
        assert np.all(imagined[:, 2:] >= 8) and np.all(imagined <= 16)
        # Half of each batch of 16 is imagined once the model buffer has data.
        # (the model buffer fills at the block starting at step 64; the phase
        # ending at 64 belongs to the block before.)
        assert np.all(planning == 8 * 4 * 16)


# Dyna-DQN's compiles take ~1 min on 2 cores: slow (the runner's chunking is
# covered in the default run by DQN, SAC and the compare tests).
@pytest.mark.parametrize("agent", ["dqn", pytest.param("dyna_dqn", marks=pytest.mark.slow)])
def test_run_driven_chunk_by_chunk_equals_the_one_call_train_bitwise(agent):
    env, params = envs.make("CartPole-v1")
    module, config = (dqn, TINY) if agent == "dqn" else (dyna_dqn, TINY_DYNA)
    chunked = module.make_chunked(config, env, params)
    # 20 units of one 16-step phase (DQN), 10 of one 32-step block (Dyna-DQN).
    assert chunked.num_units == {"dqn": 20, "dyna_dqn": 10}[agent]
    key = jax.random.key(0)
    whole = jax.jit(module.make_train(config, env, params))(key)
    first = chunked.num_units // 3
    pieces = chunk_by_chunk(chunked, key, (first, chunked.num_units - first))
    assert jax.tree.structure(whole) == jax.tree.structure(pieces)
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(pieces), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert int(whole.metrics.q_updates.sum()) > 0  # updates ran: the comparison covers learning


def test_dyna_uses_known_task_functions_unless_told_to_learn_them():
    env, params = envs.make("CartPole-v1")
    heads = {}
    for learn in (False, True):
        config = dataclasses.replace(TINY_DYNA, learn_task=learn)
        state = jax.jit(dyna_dqn.make_chunked(config, env, params).init)(jax.random.key(0))
        layers = state.extra.ensemble.params["params"]
        heads[learn] = (layers["Dense_1"]["kernel"].shape[-1], "Dense_3" in layers)
    # Mean head: the state change (4), plus the reward when learned; a
    # termination head only when learned.
    assert heads == {False: (4, False), True: (5, True)}
