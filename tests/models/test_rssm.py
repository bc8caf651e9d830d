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


def test_open_loop_shapes_validity_and_bad_context():
    cfg = _config()
    params = rssm.rssm_init(cfg, jax.random.key(0)).params
    window = _window(jax.random.key(1))  # an episode ends at transition 3
    open_loop = jax.jit(rssm.open_loop, static_argnums=(0, 4))
    out = open_loop(cfg, params, jax.random.key(2), window, 2)
    assert out.predicted.shape == (B, T - 2, 4) and out.real.shape == (B, T - 2, 4)
    assert out.predicted_reward.shape == (B, T - 2)
    # Predictions for transitions 2 and 3 carry the state of the same episode;
    # those after the end at 3 do not.
    np.testing.assert_array_equal(np.asarray(out.valid), np.tile([1.0, 1.0, 0.0, 0.0], (B, 1)))
    # Context 4 ends on the episode's last observation: nothing after it is valid.
    at_end = open_loop(cfg, params, jax.random.key(2), window, 4)
    np.testing.assert_array_equal(np.asarray(at_end.valid), np.zeros((B, 2)))
    # Context 5 restarts at the next episode's first observation inside the context.
    late = open_loop(cfg, params, jax.random.key(2), window, 5)
    np.testing.assert_array_equal(np.asarray(late.valid), np.ones((B, 1)))
    for context in (0, T, 2.0, True):
        with pytest.raises(ValueError, match="context"):
            rssm.open_loop(cfg, params, jax.random.key(2), window, context)
    pixels = rssm.preset("tiny", (16, 16, 3), 2, True, stoch=4, classes=5)
    pixel_params = rssm.rssm_init(pixels, jax.random.key(0)).params
    frames = open_loop(
        pixels,
        pixel_params,
        jax.random.key(2),
        _window(jax.random.key(1), (16, 16, 3), jnp.uint8),
        3,
    )
    assert frames.predicted.dtype == jnp.uint8 and frames.predicted.shape == (B, T - 3, 16, 16, 3)


def _pendulum_episodes(key, episodes: int):
    """Random-action Pendulum-v1 episodes as ``[episodes, 200]`` transitions."""
    from mbrl_jax import envs

    env, params = envs.make("Pendulum-v1")

    def episode(key):
        reset_key, loop_key = jax.random.split(key)
        obs, state = env.reset(reset_key, params)

        def body(carry, k):
            obs, state = carry
            action_key, step_key = jax.random.split(k)
            action = jax.random.uniform(action_key, (1,), minval=-1.0, maxval=1.0)
            next_obs, state, reward, term, trunc, info = env.step(
                step_key, state, 2.0 * action, params
            )
            step = Transition(obs, action, reward, info["final_observation"], term, term | trunc)
            return (next_obs, state), step

        return jax.lax.scan(body, (obs, state), jax.random.split(loop_key, 200))[1]

    return jax.vmap(episode)(jax.random.split(key, episodes))


def _open_loop_fidelity(updates: int):
    """Fits the world model on random Pendulum-v1 episodes, then predicts 15 steps
    open loop (5 observed) on held-out ones. Returns the mean absolute error per
    step of the predicted observations and of repeating the last observed one."""
    data = _pendulum_episodes(jax.random.key(0), 80)
    train = jax.tree.map(lambda x: x[:64], data)
    held_out = jax.tree.map(lambda x: x[64:, :20], data)
    cfg = rssm.preset("tiny", (3,), 1, False, stoch=16, classes=16, learning_rate=4e-4)
    batch, length = 16, 32

    @jax.jit
    def fit(key):
        def body(state, k):
            episode_key, start_key, update_key = jax.random.split(k, 3)
            episode = jax.random.randint(episode_key, (batch,), 0, 64)
            start = jax.random.randint(start_key, (batch,), 0, 200 - length)
            index = start[:, None] + jnp.arange(length)
            window = jax.tree.map(lambda x: x[episode[:, None], index], train)
            return rssm.rssm_update(cfg, state, update_key, window)[0], None

        return jax.lax.scan(body, rssm.rssm_init(cfg, key), jax.random.split(key, updates))[0]

    params = fit(jax.random.key(1)).params
    out = rssm.open_loop(cfg, params, jax.random.key(2), held_out, 5)
    assert np.all(np.asarray(out.valid) == 1.0)
    error = np.abs(np.asarray(out.predicted) - np.asarray(out.real)).mean(axis=(0, 2))
    last_seen = np.asarray(held_out.next_state[:, 4:5])
    baseline = np.abs(last_seen - np.asarray(out.real)).mean(axis=(0, 2))
    return error, baseline


def test_open_loop_predictions_beat_repeating_the_last_observation():
    error, baseline = _open_loop_fidelity(updates=300)
    assert error.shape == (15,)
    assert error.mean() < 0.7 * baseline.mean(), (error, baseline)


@pytest.mark.slow
def test_open_loop_fidelity_on_pendulum_after_training():
    """The stated bound: after 1,500 updates the 15-step open-loop prediction of
    (cos, sin, angular velocity) is off by < 0.3 on average (measured 0.18; repeating
    the last observation: 1.17), and by less than that baseline at every step."""
    error, baseline = _open_loop_fidelity(updates=1500)
    assert error.mean() < 0.3, error
    assert np.all(error < baseline), (error, baseline)


def test_space_to_depth_is_2x2_patches_and_inverts():
    x = jnp.arange(2 * 4 * 4 * 3).reshape(2, 4, 4, 3)
    y = rssm.space_to_depth(x)
    assert y.shape == (2, 2, 2, 12)
    patch = np.concatenate([x[0, 0, 2], x[0, 0, 3], x[0, 1, 2], x[0, 1, 3]])
    np.testing.assert_array_equal(y[0, 0, 1], patch)
    np.testing.assert_array_equal(rssm.depth_to_space(y), x)
