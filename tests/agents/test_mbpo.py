"""MBPO: settings, the rollout schedule, a tiny compiled run."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_jax import envs
from mbrl_jax.agents import mbpo, sac
from mbrl_jax.models.ensemble import EnsembleConfig
from tests.agents.chunking import chunk_by_chunk

TINY = mbpo.Config(
    num_steps=300,
    learning_starts=100,
    model_train_freq=50,
    model_epochs=2,
    rollout_batch_size=32,
    rollout_schedule=(0, 1, 1, 3),
    epoch_length=100,
    updates_per_step=2,
    sac=sac.Config(hidden_sizes=(32, 32), batch_size=32),
    model=EnsembleConfig(
        ensemble_size=3, num_elites=2, hidden_size=32, num_layers=2, batch_size=32
    ),
)


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("updates_per_step", 0, "updates_per_step"),
        ("real_ratio", 1.5, "real_ratio"),
        ("real_ratio", float("nan"), "real_ratio"),
        ("rollout_schedule", (1, 15, 0, 1), "rollout_schedule"),
        ("rollout_schedule", (15, 1, 1, 1), "rollout_schedule"),
        ("rollout_schedule", (1, 15, 1), "rollout_schedule"),
        ("model_train_freq", 0, "model_train_freq"),
        ("epoch_length", 10, "epoch_length"),
        ("learning_starts", 0, "learning_starts"),
    ],
)
def test_bad_settings(field, value, message):
    import dataclasses

    with pytest.raises(ValueError, match=message):
        dataclasses.replace(mbpo.Config(), **{field: value})


def test_rollout_schedule_is_linear_between_the_epochs():
    config = mbpo.Config(rollout_schedule=(20, 100, 1, 25), epoch_length=1000)
    k = [
        int(mbpo.rollout_length(config, jnp.int32(s))) for s in (0, 20_000, 60_000, 100_000, 10**6)
    ]
    assert k == [1, 1, 13, 25, 25]


def test_discrete_env_and_short_budget_are_refused():
    env, params = envs.make("CartPole-v1")
    with pytest.raises(ValueError, match="continuous"):
        mbpo.make_chunked(TINY, env, params)
    env, params = envs.make("Pendulum-v1")
    import dataclasses

    with pytest.raises(ValueError, match="learning_starts"):
        mbpo.make_chunked(dataclasses.replace(TINY, num_steps=50), env, params)


def test_tiny_run_fills_the_model_buffer_and_learns_on_it():
    env, params = envs.make("Pendulum-v1")
    chunked = mbpo.make_chunked(TINY, env, params)
    assert chunked.num_units == 4 and chunked.unit_steps == 50
    state = jax.jit(chunked.init)(jax.random.key(0))
    state, outs = jax.jit(lambda s: jax.lax.scan(lambda s, _: chunked.unit(s), s, None, 4))(state)
    run = state[0]
    # After each fit: 32 rollouts of k steps (k = 1 at step 100, 3 from step 100 + 100 on).
    assert int(run.imagined.size) > 32 and int(run.real.size) == 300
    assert bool(jnp.all(jnp.isfinite(run.imagined.data.state[: int(run.imagined.size)])))
    _, out = chunked.finish(state, outs)
    assert out.metrics.reward.shape == (300,)
    np.testing.assert_array_equal(out.metrics.q_updates[:100], 0)
    np.testing.assert_array_equal(out.metrics.q_updates[100:], 2)
    assert out.model_val_loss.shape == (4, 3) and bool(jnp.all(jnp.isfinite(out.model_val_loss)))
    assert int(out.agent.steps) == 400  # 200 steps x UTD 2
    ev = chunked.evaluate(state, jax.random.key(1), 2)
    assert ev.returns.shape == (2,) and bool(jnp.all(jnp.isfinite(ev.returns)))


@pytest.mark.slow  # ~1 min of compiling on 2 cores
def test_run_driven_chunk_by_chunk_equals_the_one_call_train():
    env, params = envs.make("Pendulum-v1")
    chunked = mbpo.make_chunked(TINY, env, params)
    assert chunked.num_units == 4
    key = jax.random.key(0)
    whole = jax.jit(mbpo.make_train(TINY, env, params))(key)
    # Chunks of 1 and 3 units after init's random steps.
    pieces = chunk_by_chunk(chunked, key, (1, 3))
    assert jax.tree.structure(whole) == jax.tree.structure(pieces)
    # Not bitwise: XLA compiles the SAC updates of the first unit differently
    # when init is in the same program (the one-call train) than on their own,
    # a last-bit difference in the agent after one unit that training grows to
    # ~1e-6 relative by the end (the same for chunks of 4, 2+2, 1+3 or 3+1
    # units). Different keys or steps would differ by far more.
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(pieces), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    assert int(whole.agent.steps) > 0  # updates ran: the comparison covers learning
