"""Compounding error: exact values for a linear model, windows, growth fits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_jax.core.types import Model
from mbrl_jax.diagnostics import compounding_error, growth, windows


def linear_model(a: float, noise: float = 0.0) -> Model:
    """``x' = a x + u (+ noise)``, reward ``x[0]``, never terminates."""

    def step(params, key, state, action):
        nxt = params * state + action + noise * jax.random.normal(key, state.shape)
        return nxt, state[0], jnp.bool_(False)

    return Model(init=lambda key: jnp.float32(a), step=step)


def real_windows(a: float, n: int, k: int):
    x0 = jnp.linspace(0.5, 1.5, n)[:, None] * jnp.ones((1, 2))
    actions = jnp.zeros((n, k, 2))
    states = [x0]
    for _ in range(k):
        states.append(a * states[-1])
    obs = jnp.stack(states, axis=1)  # [N, K + 1, 2]
    rewards = obs[:, :-1, 0]
    from mbrl_jax.diagnostics import Windows

    return Windows(obs, actions, rewards), x0


def test_true_model_has_zero_error_and_a_wrong_one_the_exact_error():
    data, x0 = real_windows(1.0, 64, 15)
    key = jax.random.key(0)
    exact = compounding_error(linear_model(1.0), jnp.float32(1.0), key, data)
    np.testing.assert_allclose(exact.mse, 0.0, atol=1e-9)
    np.testing.assert_allclose(exact.reward_mse, 0.0, atol=1e-9)
    assert np.all(np.asarray(exact.alive) == 1.0) and np.all(np.isnan(exact.nll))
    run = jax.jit(compounding_error, static_argnums=(0, 4))
    wrong = run(linear_model(1.25), jnp.float32(1.25), key, data, 1)
    k = np.arange(1, 16)
    want = np.mean(np.asarray(x0[:, 0]) ** 2) * (1.25**k - 1.0) ** 2
    np.testing.assert_allclose(wrong.mse_mean, want, rtol=1e-3)
    fit = growth(wrong.mse_mean)
    assert fit.kind == "exponential" and fit.exp_rate > 0


def test_stochastic_model_gives_a_finite_nll_that_grows():
    data, _ = real_windows(1.0, 32, 10)
    out = compounding_error(linear_model(1.0, 0.1), jnp.float32(1.0), jax.random.key(1), data, 16)
    assert np.all(np.isfinite(out.nll))
    assert float(out.mse_mean[-1]) > float(out.mse_mean[0])
    # Random-walk noise: the variance grows linearly in k.
    np.testing.assert_allclose(out.mse_mean / out.mse_mean[0], np.arange(1, 11), rtol=0.35)
    assert growth(out.mse_mean).kind == "linear"
    for bad in (0, 1.5):
        with pytest.raises(ValueError, match="num_samples"):
            compounding_error(linear_model(1.0), jnp.float32(1.0), jax.random.key(1), data, bad)


def test_growth_fits():
    k = np.arange(1, 16)
    lin = growth(1.0 + 2.0 * k)
    assert lin.kind == "linear" and abs(lin.linear_slope - 2.0) < 1e-9
    exp = growth(0.01 * np.exp(0.3 * k))
    assert exp.kind == "exponential" and abs(exp.exp_rate - 0.3) < 1e-9
    with pytest.raises(ValueError, match="finite positive"):
        growth([1.0, 0.0, 2.0])
    with pytest.raises(ValueError, match=">= 3"):
        growth([1.0, 2.0])


def test_windows_stay_inside_episodes_and_skip_nan_rows():
    t = 10
    obs = np.arange(t, dtype=np.float32)[:, None]
    nxt = obs + 1
    actions = np.zeros(t, np.int32)
    rewards = np.ones(t, np.float32)
    dones = np.zeros(t, bool)
    dones[4] = True  # the episode ends with step 4
    got = windows(obs, actions, rewards, nxt, dones, 3)
    starts = got.observations[:, 0, 0].tolist()
    # Windows [s, s + 2] with no end before their last step: 0, 1, 2 and 5, 6, 7.
    assert starts == [0.0, 1.0, 2.0, 5.0, 6.0, 7.0]
    np.testing.assert_array_equal(got.observations[0, :, 0], [0, 1, 2, 3])
    obs[6, 0] = np.nan
    assert windows(obs, actions, rewards, nxt, dones, 3).observations[:, 0, 0].tolist() == [
        0.0,
        1.0,
        2.0,
        7.0,
    ]
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, 10\]"):
        windows(obs, actions, rewards, nxt, dones, 11)
    with pytest.raises(ValueError, match="no 6-step window"):
        windows(obs, actions, rewards, nxt, dones, 6)


def test_mean_mse_is_the_error_of_the_samples_mean():
    data, _ = real_windows(1.0, 32, 5)
    key = jax.random.key(1)
    one = compounding_error(linear_model(1.0, noise=0.1), jnp.float32(1.0), key, data, 1)
    np.testing.assert_allclose(one.mean_mse, one.mse_mean, rtol=1e-6)
    many = compounding_error(linear_model(1.0, noise=0.1), jnp.float32(1.0), key, data, 64)
    # Averaging 64 samples of zero-mean noise removes most of the spread.
    assert np.all(np.asarray(many.mean_mse) < 0.1 * np.asarray(many.mse_mean))
