import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_jax import envs
from mbrl_jax.agents import world_models

TINY = world_models.Config(
    num_steps=128,
    num_iterations=2,
    latent_size=2,
    vae_hidden=8,
    vae_updates=3,
    rnn_hidden=8,
    num_mixtures=2,
    mdn_updates=3,
    sequence_length=8,
    batch_size=8,
    population=4,
    num_rollouts=2,
    generations=2,
    horizon=6,
    num_eval_episodes=2,
)


@pytest.fixture(scope="module")
def cartpole():
    return envs.make("CartPole-v1")


def test_train_vmapped_over_seeds_has_finite_shapes_and_does_not_recompile(cartpole):
    env, params = cartpole
    train = jax.jit(jax.vmap(world_models.make_train(TINY, env, params)))
    out = train(jax.random.split(jax.random.key(0), 2))
    train(jax.random.split(jax.random.key(1), 2))
    assert train._cache_size() == 1
    assert out.metrics.reward.shape == (2, 128) and out.metrics.done.shape == (2, 128)
    assert out.eval_returns.shape == (2, 2, 2) and out.best_fitness.shape == (2, 2, 2)
    assert out.dream_return.shape == (2, 2) and out.controller.weight.shape == (2, 10, 2)
    for leaf in jax.tree.leaves(out):
        assert np.all(np.isfinite(np.asarray(leaf, np.float32)))
    # CartPole pays 1 per step; episodes end within the collected stream.
    assert np.all(np.asarray(out.metrics.reward) == 1.0)
    assert int(np.asarray(out.metrics.done).sum()) > 0
    lengths = np.asarray(out.eval_lengths)
    np.testing.assert_allclose(np.asarray(out.eval_returns), lengths)
    # The dream's best candidate of a generation scores no more than the horizon.
    assert float(np.asarray(out.best_fitness).max()) <= TINY.horizon + 1e-3


def test_dream_returns_score_each_candidate_and_take_a_traced_tau(cartpole):
    env, params = cartpole
    parts = world_models.make_parts(TINY, env, params)
    key = jax.random.key(0)
    wm = world_models.WorldModelParams(
        parts.vae.init(key), world_models.mdn.mdn_rnn_init(parts.mdn_config, key)
    )
    zero = parts.controller_init()
    candidates = jax.tree.map(lambda x: jnp.stack([x, x, x + 1.0]), zero)
    starts = parts.reset_observations(jax.random.key(1), 5)

    @jax.jit
    def dream(candidates, tau):
        return parts.dream_returns(wm, candidates, jax.random.key(2), starts, 3, 6, tau)

    returns = np.asarray(dream(candidates, 1.0))
    dream(candidates, 0.5)
    assert dream._cache_size() == 1
    assert returns.shape == (3,)
    assert returns[0] == returns[1]  # same candidate, same starts and keys: same score


@pytest.mark.parametrize(
    "field, value, text",
    [
        ("population", 1, "Config.population must be in [2, inf)"),
        ("tau", 0.0, "Config.tau must be in (0.0, inf)"),
        ("tau", float("nan"), "Config.tau must be a finite number"),
        ("tau", float("inf"), "Config.tau must be a finite number"),
        ("exploration", 1.5, "Config.exploration must be in [0.0, 1.0]"),
        ("horizon", 0, "Config.horizon must be in [1, inf)"),
        ("num_steps", 10, "Config.num_steps must be in [96, inf)"),
        ("generations", 2.0, "Config.generations must be an integer"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field, value, text):
    with pytest.raises(ValueError, match=re.escape(text)):
        world_models.Config(**{field: value})


@pytest.mark.slow
def test_controller_trained_in_the_dream_balances_the_real_cartpole(cartpole):
    env, params = cartpole
    train = jax.jit(jax.vmap(world_models.make_train(world_models.Config(), env, params)))
    out = train(jax.random.split(jax.random.key(0), 2))
    final = np.asarray(out.eval_returns)[:, -1].mean(-1)
    assert final.mean() >= 150.0  # random actions: about 22
