"""The RSSM world model: shapes, episode resets in filtering, learning, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_jax.core.rollout import rollout
from mbrl_jax.core.types import Transition
from mbrl_jax.models import rssm
from mbrl_jax.models.value_transforms import symexp, symlog, symlog_bins, two_hot, two_hot_mean

B, T = 3, 6


def _config(**kw):
    return rssm.preset("tiny", (4,), 2, True, stoch=4, classes=5, **kw)


def _window(key, obs_shape=(4,), dtype=jnp.float32):
    k1, k2, k3 = jax.random.split(key, 3)
    if dtype == jnp.uint8:
        obs = jax.random.randint(k1, (B, T, *obs_shape), 0, 256).astype(jnp.uint8)
    else:
        obs = jax.random.normal(k1, (B, T, *obs_shape))
    next_obs = jnp.roll(obs, -1, axis=1)
    action = jax.random.randint(k2, (B, T), 0, 2)
    reward = jax.random.normal(k3, (B, T))
    done = jnp.zeros((B, T), bool).at[:, 3].set(True)
    return Transition(obs, action, reward, next_obs, done, done)


def test_two_hot_is_exact_on_symlog_bins():
    bins = symlog_bins(255)
    y = jnp.array([-3.7, 0.0, 0.01, 12.5, 19.99])
    weights = two_hot(y, bins)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-6)
    np.testing.assert_allclose((weights * bins).sum(-1), y, atol=1e-5)
    x = jnp.array([-100.0, -1.0, 0.5, 300.0])
    np.testing.assert_allclose(symexp(symlog(x)), x, rtol=1e-5)
    logits = jnp.log(two_hot(symlog(x), bins) + 1e-12)
    np.testing.assert_allclose(two_hot_mean(logits, bins), x, rtol=1e-3)


def test_observe_shapes_and_reset_at_episode_end():
    cfg = _config()
    params = rssm.rssm_init(cfg, jax.random.key(0)).params
    window = _window(jax.random.key(1))
    observed = rssm.observe(cfg, params, jax.random.key(2), window)
    assert observed.states.deter.shape == (B, T, cfg.deter)
    assert observed.states.stoch.shape == (B, T, cfg.stoch, cfg.classes)
    assert observed.prior_logits.shape == (B, T, cfg.stoch, cfg.classes)
    np.testing.assert_allclose(observed.states.stoch.sum(-1), 1.0, atol=1e-5)
    # After the episode end at step 3, the state restarts: changing anything before
    # it leaves steps 4.. unchanged (same keys).
    changed = window._replace(
        state=window.state.at[:, :3].add(5.0), next_state=window.next_state.at[:, :3].add(5.0)
    )
    other = rssm.observe(cfg, params, jax.random.key(2), changed)
    np.testing.assert_allclose(other.states.deter[:, 4:], observed.states.deter[:, 4:], atol=1e-5)
    assert not np.allclose(other.states.deter[:, :3], observed.states.deter[:, :3])


def test_world_model_learns_a_fixed_batch():
    cfg = _config(learning_rate=3e-3)
    state = rssm.rssm_init(cfg, jax.random.key(0))
    window = _window(jax.random.key(1))
    update = jax.jit(lambda s, k: rssm.rssm_update(cfg, s, k, window))
    _, (_, first) = update(state, jax.random.key(5))
    for i in range(60):
        state, (_, metrics) = update(state, jax.random.key(i))
    assert float(metrics["recon_loss"]) < 0.5 * float(first["recon_loss"])
    assert float(metrics["reward_loss"]) < float(first["reward_loss"])
    assert update._cache_size() == 1


@pytest.mark.slow
def test_imagination_through_rollout_and_pixels():
    cfg = rssm.preset("tiny", (16, 16, 3), 2, False, stoch=4, classes=5)
    model = rssm.rssm_model(cfg)
    params = model.init(jax.random.key(0))
    window = _window(jax.random.key(1), (16, 16, 3), jnp.uint8)
    window = window._replace(action=jnp.zeros((B, T, 2)))
    loss, (observed, _) = rssm.world_model_loss(cfg, params.params, jax.random.key(2), window)
    assert np.isfinite(float(loss))
    start = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), observed.states)

    def policy(key, states, t):
        return jnp.tanh(jax.random.normal(key, (states.deter.shape[0], 2)))

    out = rollout(model, policy, params, jax.random.key(3), start, 5)
    assert out.rewards.shape == (5, B * T)
    assert out.final_state.stoch.shape == (B * T, 4, 5)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(obs_shape=(30, 30, 3)), "obs_shape"),
        (dict(obs_shape=(64, 32, 3)), "obs_shape"),
        (dict(obs_shape=(4, 4)), "obs_shape"),
        (dict(unimix=1.0), "unimix"),
        (dict(free_nats=float("nan")), "free_nats"),
        (dict(deter=0), "deter"),
    ],
)
def test_bad_config(kwargs, field):
    base = dict(obs_shape=(4,), action_size=2)
    with pytest.raises(ValueError, match=field):
        rssm.RSSMConfig(**{**base, **kwargs})
    with pytest.raises(ValueError, match="size"):
        rssm.preset("huge", (4,), 2, True)
