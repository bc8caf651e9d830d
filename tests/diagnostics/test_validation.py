"""Model validation: one-step error against a hand computation, NaN rows,
fitted vs unfitted, and K-fold cross-validation under one vmap."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_jax.core.replay import ReplayBuffer
from mbrl_jax.core.types import Transition
from mbrl_jax.diagnostics import validation
from mbrl_jax.diagnostics.validation import cross_validate, one_step_error
from mbrl_jax.models.ensemble import Ensemble, EnsembleConfig

N, D, A = 400, 3, 2
M = N // 5  # every scored batch has this size: one compile of the score per model
NOISE = 0.01


def linear_data(key, n):
    """``next = s + 0.1 * B a + NOISE * eps``; reward ``-|s|^2``."""
    ks, ka, kn = jax.random.split(key, 3)
    s = jax.random.uniform(ks, (n, D), minval=-1, maxval=1)
    a = jax.random.uniform(ka, (n, A), minval=-1, maxval=1)
    drive = jnp.concatenate([a, a[:, :1]], axis=-1)
    nxt = s + 0.1 * drive + NOISE * jax.random.normal(kn, (n, D))
    return Transition(s, a, -jnp.sum(s**2, -1), nxt, jnp.zeros(n, bool))


def config(**kw):
    return EnsembleConfig(
        obs_dim=D,
        action_dim=A,
        ensemble_size=2,
        num_elites=2,
        hidden_size=32,
        num_layers=2,
        batch_size=64,
        **kw,
    )


class CountingEnsemble(Ensemble):
    """Counts how often ``fit`` is traced: once for all folds under vmap."""

    fit_calls = 0

    def fit(self, key, state, buffer, num_epochs):
        self.fit_calls += 1
        return super().fit(key, state, buffer, num_epochs)


@pytest.fixture(scope="module")
def ens():
    return CountingEnsemble(config())


@pytest.fixture(scope="module")
def data():
    return linear_data(jax.random.key(0), N)


@pytest.fixture(scope="module")
def unfitted(ens):
    return jax.jit(ens.init)(jax.random.key(1))


@pytest.fixture(scope="module")
def holdout(ens, data, unfitted):
    """Fit on the first 80%, score on the last 20%: the hold-out estimate."""
    cut = N - M
    train = jax.tree.map(lambda x: x[:cut], data)
    test = jax.tree.map(lambda x: x[cut:], data)
    buffer = ReplayBuffer(train, jnp.int32(cut), jnp.int32(0))
    fit = jax.jit(ens.fit, static_argnums=3)
    state, _ = fit(jax.random.key(3), unfitted, buffer, 20)
    return state, test


def test_one_step_error_matches_numpy(ens, unfitted, data):
    batch = jax.tree.map(lambda x: x[:M], data)
    err = one_step_error(ens, unfitted, batch)
    pred = jax.tree.map(np.asarray, jax.jit(ens.predict)(unfitted, batch.state, batch.action))
    target = np.asarray(batch.next_state, np.float64)
    mean = pred["mean"].astype(np.float64)
    var = pred["aleatoric_var"].astype(np.float64) + pred["epistemic_var"]
    assert np.all(pred["epistemic_var"] > 0)  # two members that disagree
    mse = ((target - mean) ** 2).mean(0)
    nll = (0.5 * (np.log(2 * np.pi * var) + (target - mean) ** 2 / var)).mean(0)
    assert err.mse.shape == err.nll.shape == (D,) and int(err.num_used) == M
    np.testing.assert_allclose(err.mse, mse, rtol=1e-5)
    np.testing.assert_allclose(err.mse_mean, mse.mean(), rtol=1e-5)
    np.testing.assert_allclose(err.nll, nll, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(err.nll_mean, nll.mean(), rtol=1e-4, atol=1e-5)


class Stub:
    """Any model with the Ensemble's ``config``/``predict``: predicts ``obs``
    (and reward 0) with aleatoric 0.25 + epistemic 0.75 = unit variance."""

    def __init__(self, learn_reward):
        self.config = types.SimpleNamespace(obs_dim=2, learn_reward=learn_reward)

    def predict(self, state, obs, action):
        mean = jnp.concatenate([obs, jnp.zeros((obs.shape[0], int(self.config.learn_reward)))], 1)
        ones = jnp.ones_like(mean)
        return {"mean": mean, "aleatoric_var": 0.25 * ones, "epistemic_var": 0.75 * ones}


@pytest.mark.parametrize("learn_reward", [False, True])
def test_any_model_with_predict_and_total_variance(learn_reward):
    obs = jnp.zeros((4, 2))
    nxt = jnp.array([[1.0, 0.0], [-1.0, 2.0], [3.0, 0.0], [1.0, 2.0]])
    reward = jnp.array([2.0, 0.0, 0.0, jnp.nan])  # NaN: row 3 out only if learned
    batch = Transition(obs, jnp.zeros((4, 1)), reward, nxt, jnp.zeros(4, bool))
    err = one_step_error(Stub(learn_reward), None, batch)
    mse = [3.0, 2.0] if not learn_reward else [11 / 3, 4 / 3, 4 / 3]
    np.testing.assert_allclose(err.mse, mse, rtol=1e-6)
    np.testing.assert_allclose(err.nll, 0.5 * np.log(2 * np.pi) + np.array(mse) / 2, rtol=1e-6)
    assert int(err.num_used) == 4 - learn_reward


def test_nan_rows_are_left_out_and_counted(ens, unfitted, data):
    state = unfitted
    batch = jax.tree.map(lambda x: x[:M], data)
    dirty = batch._replace(
        state=batch.state.at[3, 0].set(jnp.nan),
        action=batch.action.at[7, 1].set(jnp.inf),
        next_state=batch.next_state.at[11, 2].set(-jnp.inf),
    )
    keep = np.setdiff1d(np.arange(M), [3, 7, 11])
    clean = one_step_error(ens, state, jax.tree.map(lambda x: x[keep], batch))
    err = one_step_error(ens, state, dirty)
    assert int(err.num_used) == M - 3 and int(clean.num_used) == M - 3
    np.testing.assert_allclose(err.mse, clean.mse, rtol=1e-5)
    np.testing.assert_allclose(err.nll, clean.nll, rtol=1e-5)
    # The reward is not learned: a NaN reward does not matter.
    nan_reward = batch._replace(reward=batch.reward * jnp.nan)
    assert int(one_step_error(ens, state, nan_reward).num_used) == M
    empty = one_step_error(ens, state, batch._replace(next_state=batch.next_state * jnp.nan))
    assert int(empty.num_used) == 0 and np.isnan(float(empty.mse_mean))


def test_fitted_error_is_far_below_unfitted(ens, unfitted, holdout):
    state, test = holdout
    fitted = one_step_error(ens, state, test)
    before = one_step_error(ens, unfitted, test)
    assert float(fitted.mse_mean) < 0.1 * float(before.mse_mean)
    assert float(fitted.mse_mean) < 10 * NOISE**2
    assert float(fitted.nll_mean) < float(before.nll_mean) - 1.0


def test_cross_validate_folds_under_one_vmap(ens, data, holdout):
    calls_before = ens.fit_calls
    compiled_before = validation._cross_validate._cache_size()
    cv = cross_validate(ens, jax.random.key(5), data, num_folds=5, num_epochs=20)
    assert cv.fold_mse.shape == cv.fold_nll.shape == cv.fold_sizes.shape == (5,)
    assert np.all(np.isfinite(cv.fold_mse)) and np.all(np.isfinite(cv.fold_nll))
    np.testing.assert_array_equal(cv.fold_sizes, [80] * 5)
    assert int(cv.fold_sizes.sum()) == int(cv.num_used) == N
    np.testing.assert_allclose(cv.mse_mean, cv.fold_mse.mean(), rtol=1e-6)
    np.testing.assert_allclose(cv.mse_std, np.std(np.asarray(cv.fold_mse), ddof=1), rtol=1e-4)
    # Close to a separate hold-out estimate (same model, epochs, split share).
    state, test = holdout
    single = float(one_step_error(ens, state, test).mse_mean)
    assert single / 3 < float(cv.mse_mean) < 3 * single
    assert float(cv.mse_std) < float(cv.mse_mean)
    # Same key, same folds; another key, another shuffle; one trace of fit
    # for all folds (vmap, not a Python loop) and no recompile.
    again = cross_validate(ens, jax.random.key(5), data, num_folds=5, num_epochs=20)
    np.testing.assert_array_equal(again.fold_mse, cv.fold_mse)
    other = cross_validate(ens, jax.random.key(6), data, num_folds=5, num_epochs=20)
    assert not np.array_equal(other.fold_mse, cv.fold_mse)
    assert ens.fit_calls - calls_before == 1
    assert validation._cross_validate._cache_size() == compiled_before + 1
    # NaN rows are left out of every fold and counted; still the same program.
    dirty = data._replace(next_state=data.next_state.at[jnp.array([0, 10, 20])].set(jnp.nan))
    cv_dirty = cross_validate(ens, jax.random.key(5), dirty, num_folds=5, num_epochs=20)
    assert int(cv_dirty.num_used) == N - 3 and int(cv_dirty.fold_sizes.sum()) == N - 3
    assert int(cv_dirty.fold_sizes.max() - cv_dirty.fold_sizes.min()) <= 1
    assert np.all(np.isfinite(cv_dirty.fold_mse))
    assert validation._cross_validate._cache_size() == compiled_before + 1


def test_bad_arguments(ens, unfitted, data):
    small = jax.tree.map(lambda x: x[:10], data)
    for folds in (1, 11, 2.5, True, "3"):
        with pytest.raises(ValueError, match="num_folds"):
            cross_validate(ens, jax.random.key(0), small, num_folds=folds)
    for epochs in (0, 1.5, False):
        with pytest.raises(ValueError, match="num_epochs"):
            cross_validate(ens, jax.random.key(0), small, num_folds=2, num_epochs=epochs)
    state = unfitted
    with pytest.raises(ValueError, match="next_state"):
        one_step_error(ens, state, small._replace(next_state=small.next_state[:, :2]))
    with pytest.raises(ValueError, match=r"data.state must have shape \[N, obs_dim=3\]"):
        one_step_error(ens, state, small._replace(state=small.state[0]))
    with pytest.raises(ValueError, match="data.action"):
        one_step_error(ens, state, small._replace(action=small.action[:5]))


def test_predictive_needs_a_predictive_variance(data):
    from mbrl_jax.diagnostics import predictive

    deterministic = Ensemble(config(probabilistic=False))
    state = jax.jit(deterministic.init)(jax.random.key(4))
    # Mean-squared-error heads: no aleatoric variance, only the members' spread.
    mean, var, target = predictive(deterministic, state, data)
    pred = deterministic.predict(state, data.state, data.action)
    np.testing.assert_array_equal(pred["aleatoric_var"], 0.0)
    np.testing.assert_allclose(var, pred["epistemic_var"])
    assert mean.shape == target.shape == (N, D)
    import dataclasses

    single_config = dataclasses.replace(config(probabilistic=False), ensemble_size=1, num_elites=1)
    single = Ensemble(single_config)
    with pytest.raises(ValueError, match="no predictive variance"):
        predictive(single, jax.jit(single.init)(jax.random.key(5)), data)
