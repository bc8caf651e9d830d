"""Calibration: exact coverage on constructed data, ECE and recalibration on samples."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_jax.diagnostics import calibration, fit_variance_scale, gaussian_nll


def test_coverage_is_exact_on_constructed_targets():
    # |z| = 0.5, 0.99, 2.0, 3.0 in one dimension; the 68.27% interval is +-1 std.
    z = jnp.array([[0.5], [-0.99], [2.0], [-3.0]])
    level = 0.6826894921370859
    cal = calibration(jnp.zeros_like(z), jnp.ones_like(z), z, levels=(level, 0.9973))
    np.testing.assert_allclose(cal.coverage[:, 0], [0.5, 0.75], atol=1e-6)
    np.testing.assert_allclose(cal.ece, [(abs(0.5 - level) + abs(0.75 - 0.9973)) / 2], atol=1e-6)
    assert int(cal.num_used) == 4


def test_calibrated_miscalibrated_and_recalibrated():
    key_a, key_b = jax.random.split(jax.random.key(0))
    n = 20_000
    mean = jax.random.normal(key_a, (n, 3))
    var = jnp.ones((n, 3))
    noise = jax.random.normal(key_b, (n, 3))
    std = jnp.array([1.0, 2.0, 0.5])  # real spread: calibrated, too narrow, too wide
    target = mean + noise * std
    before = calibration(mean, var, target)
    assert float(before.ece[0]) < 0.01
    assert float(before.ece[1]) > 0.15 and float(before.ece[2]) > 0.15
    scale = fit_variance_scale(mean, var, target)
    np.testing.assert_allclose(scale, std**2, rtol=0.05)
    after = calibration(mean, var * scale, target)
    assert float(after.ece.max()) < 0.01
    nll_before, nll_after = gaussian_nll(mean, var, target), gaussian_nll(mean, var * scale, target)
    assert float(nll_after.sum()) < float(nll_before.sum())


def test_non_finite_rows_are_left_out_and_counted():
    key = jax.random.key(1)
    mean = jax.random.normal(key, (100, 2))
    var = jnp.ones((100, 2))
    target = mean + 0.5
    clean = calibration(mean, var, target)
    dirty = calibration(
        mean.at[3, 0].set(jnp.nan), var.at[7, 1].set(-1.0), target.at[9, 1].set(jnp.inf)
    )
    assert int(clean.num_used) == 100 and int(dirty.num_used) == 97
    assert np.all(np.isfinite(dirty.coverage))
    empty = calibration(mean * jnp.nan, var, target)
    assert int(empty.num_used) == 0 and np.isnan(float(empty.ece_mean))
    np.testing.assert_array_equal(fit_variance_scale(mean * jnp.nan, var, target), [1.0, 1.0])


def test_bad_input():
    x = jnp.zeros((4, 2))
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        calibration(x, jnp.ones((4, 3)), x)
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        calibration(jnp.zeros(4), jnp.ones(4), jnp.zeros(4))
    with pytest.raises(ValueError, match=r"levels must be in \(0, 1\)"):
        calibration(x, jnp.ones_like(x), x, levels=(0.5, 1.0))
    with pytest.raises(ValueError, match=r"levels must be in \(0, 1\)"):
        calibration(x, jnp.ones_like(x), x, levels=(float("nan"),))


def test_same_shapes_do_not_recompile():
    import importlib

    module = importlib.import_module("mbrl_jax.diagnostics.calibration")

    x = jnp.zeros((32, 2))
    sizes = []
    for shift in (0.0, 1.0, 2.0):
        calibration(x + shift, jnp.ones_like(x), x)
        fit_variance_scale(x + shift, jnp.ones_like(x), x)
        sizes.append((module._calibration._cache_size(), module._fit_scale._cache_size()))
    assert sizes[0] == sizes[1] == sizes[2]


def test_calibration_fitted_scale_handles_heavy_tails():
    key_a, key_b, key_c = jax.random.split(jax.random.key(3), 3)
    n = 20_000
    mean = jnp.zeros((n, 2))
    var = jnp.ones((n, 2))
    # Gaussian spread 0.3 with 3% of misses ten times larger: the likelihood's
    # scale follows the outliers, the calibration-fitted one the bulk.
    spread = jnp.where(jax.random.uniform(key_a, (n, 2)) < 0.03, 3.0, 0.3)
    target = jax.random.normal(key_b, (n, 2)) * spread
    ml = fit_variance_scale(mean, var, target)
    cal = fit_variance_scale(mean, var, target, method="calibration")
    ece_ml = calibration(mean, var * ml, target).ece_mean
    ece_cal = calibration(mean, var * cal, target).ece_mean
    assert float(ece_cal) < 0.03 < float(ece_ml)
    # On Gaussian errors both find the true variance.
    gauss = jax.random.normal(key_c, (n, 2)) * jnp.array([2.0, 0.5])
    np.testing.assert_allclose(
        fit_variance_scale(mean, var, gauss, method="calibration"), [4.0, 0.25], rtol=0.1
    )
    with pytest.raises(ValueError, match="method"):
        fit_variance_scale(mean, var, target, method="isotonic")
    np.testing.assert_array_equal(
        fit_variance_scale(mean * jnp.nan, var, target, method="calibration"), [1.0, 1.0]
    )


def test_quantile_recalibration_of_pit_values():
    from mbrl_jax.diagnostics import pit, pit_calibration, recalibrate_pit

    key_a, key_b = jax.random.split(jax.random.key(4))
    n = 20_000
    mean = jnp.zeros((n, 2))
    var = jnp.ones((n, 2))
    spread = jnp.where(jax.random.uniform(key_a, (n, 2)) < 0.1, 3.0, 0.3)
    target = jax.random.normal(key_b, (n, 2)) * spread
    u = pit(mean, var, target)
    # Raw PIT coverage is the Gaussian's own calibration.
    np.testing.assert_allclose(
        pit_calibration(u).coverage, calibration(mean, var, target).coverage, atol=1e-4
    )
    fit, held = u[: n // 2], u[n // 2 :]
    assert float(pit_calibration(held).ece_mean) > 0.1
    assert float(pit_calibration(recalibrate_pit(fit, held)).ece_mean) < 0.01
    # NaN rows stay out.
    dirty = pit(mean.at[0, 0].set(jnp.nan), var, target)
    assert int(pit_calibration(recalibrate_pit(fit, dirty)).num_used) == n - 1
    with pytest.raises(ValueError, match="recalibrate_pit"):
        recalibrate_pit(fit, held[:, :1])
