"""Calibration of a Gaussian predictive distribution, per dimension.

For each nominal level ``p`` the fraction of real targets inside the central
``p`` interval ``mean +- z_p * std`` (``z_p = Phi^-1((1 + p) / 2)``); a
calibrated model covers ``p`` of them. The expected calibration error (ECE) is
the mean ``|coverage - p|`` over the levels. :func:`fit_variance_scale` is the
simplest recalibration that works: one factor per dimension that multiplies
the predicted variance, the maximum-likelihood one (``mean(z**2)``).

Shape letters: N samples, D dimensions, L levels.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr, ndtri

from mbrl_jax.core.types import Array

#: Nominal levels of the reliability diagram.
DEFAULT_LEVELS = tuple(np.round(np.arange(0.05, 1.0, 0.05), 2).tolist())


class Calibration(NamedTuple):
    """Calibration of ``N`` predictions of ``D`` dimensions.

    Attributes:
      levels: ``[L]`` nominal levels ``p``.
      coverage: ``[L, D]`` fraction of targets inside the central ``p`` interval.
      ece: ``[D]`` mean over levels of ``|coverage - p|``.
      ece_mean: ``[]`` mean of ``ece`` over the dimensions.
      num_used: ``[]`` int32 samples with finite mean, variance and target.
    """

    levels: Array
    coverage: Array
    ece: Array
    ece_mean: Array
    num_used: Array


def _check(mean, var, target):
    mean, var, target = jnp.asarray(mean), jnp.asarray(var), jnp.asarray(target)
    if mean.ndim != 2 or mean.shape != var.shape or mean.shape != target.shape:
        raise ValueError(
            "calibration: mean, var and target must all be [N, D]; got "
            f"{mean.shape}, {var.shape}, {target.shape}"
        )
    return mean, var, target


def _valid(mean, var, target):
    """``[N]`` rows whose every entry is finite and whose variance is positive."""
    ok = jnp.isfinite(mean) & jnp.isfinite(var) & jnp.isfinite(target) & (var > 0)
    return jnp.all(ok, axis=-1)


def calibration(mean: Array, var: Array, target: Array, levels=DEFAULT_LEVELS) -> Calibration:
    """Coverage of the central intervals of ``N(mean, var)`` at each level, per dimension.

    Rows with a non-finite entry or a variance ``<= 0`` are left out and
    counted (``num_used``); with none left every number is NaN.

    Args:
      mean, var, target: ``[N, D]``.
      levels: nominal levels in ``(0, 1)``.

    Raises:
      ValueError: shapes that differ or are not ``[N, D]``; a level outside ``(0, 1)``.
    """
    mean, var, target = _check(mean, var, target)
    levels_np = np.asarray(levels, np.float64)
    if levels_np.ndim != 1 or not np.all((levels_np > 0) & (levels_np < 1)):
        raise ValueError(f"calibration: levels must be in (0, 1), got {levels!r}")
    return _calibration(mean, var, target, jnp.asarray(levels_np, jnp.float32))


@jax.jit
def _calibration(mean, var, target, levels):
    valid = _valid(mean, var, target)
    z = jnp.abs(target - mean) / jnp.sqrt(jnp.where(valid[:, None], var, 1.0))  # [N, D]
    bound = ndtri((1.0 + levels) / 2.0)  # [L]
    inside = (z[None] <= bound[:, None, None]) & valid[None, :, None]  # [L, N, D]
    count = valid.sum()
    coverage = inside.sum(axis=1) / count  # NaN when nothing is valid
    ece = jnp.abs(coverage - levels[:, None]).mean(axis=0)
    return Calibration(levels, coverage, ece, ece.mean(), count.astype(jnp.int32))


SCALE_METHODS = ("likelihood", "calibration")


def fit_variance_scale(
    mean: Array, var: Array, target: Array, method: str = "likelihood", levels=DEFAULT_LEVELS
) -> Array:
    """``[D]`` factors ``s``, one per dimension, for the recalibrated ``N(mean, s * var)``.

    ``method="likelihood"``: the largest likelihood of the targets,
    ``s = mean(z**2)``, ``z = (target - mean) / std``. ``"calibration"``: the
    ``s`` (on a log grid from 1e-6 to 1e6, 481 points) with the smallest
    expected calibration error at ``levels``; errors with heavier tails than a
    Gaussian's (a few large misses among many small ones) pull the
    likelihood's ``s`` up and leave the central intervals too wide, while
    this one matches the coverage curve itself. Invalid rows are left out as
    in :func:`calibration`; 1 where none is valid.

    Raises:
      ValueError: shapes that differ or are not ``[N, D]``; an unknown method.
    """
    mean, var, target = _check(mean, var, target)
    if method not in SCALE_METHODS:
        raise ValueError(
            f"fit_variance_scale: method must be one of {SCALE_METHODS}, got {method!r}"
        )
    if method == "likelihood":
        return _fit_scale(mean, var, target)
    levels_np = np.asarray(levels, np.float64)
    if levels_np.ndim != 1 or not np.all((levels_np > 0) & (levels_np < 1)):
        raise ValueError(f"fit_variance_scale: levels must be in (0, 1), got {levels!r}")
    return _fit_scale_calibration(mean, var, target, jnp.asarray(levels_np, jnp.float32))


@jax.jit
def _fit_scale(mean, var, target):
    valid = _valid(mean, var, target)[:, None]
    z2 = jnp.where(valid, (target - mean) ** 2 / jnp.where(valid, var, 1.0), 0.0)
    count = valid.sum()
    return jnp.where(count > 0, z2.sum(axis=0) / jnp.maximum(count, 1), 1.0)


@jax.jit
def _fit_scale_calibration(mean, var, target, levels):
    valid = _valid(mean, var, target)
    count = valid.sum()
    # |z| of invalid rows is +inf: sorted last, never inside an interval.
    z = jnp.where(
        valid[:, None],
        jnp.abs(target - mean) / jnp.sqrt(jnp.where(valid[:, None], var, 1.0)),
        jnp.inf,
    )
    z = jnp.sort(z, axis=0)  # [N, D]
    grid = jnp.logspace(-6.0, 6.0, 481)  # [G]
    bound = ndtri((1.0 + levels) / 2.0)  # [L]
    edges = bound[None, :] * jnp.sqrt(grid)[:, None]  # [G, L]

    def per_dim(zd):
        inside = jnp.searchsorted(zd, edges, side="right")  # [G, L]
        coverage = inside / jnp.maximum(count, 1)
        return jnp.abs(coverage - levels[None]).mean(-1)  # [G]

    ece = jax.vmap(per_dim, in_axes=1, out_axes=1)(z)  # [G, D]
    best = grid[jnp.argmin(ece, axis=0)]
    return jnp.where(count > 0, best, 1.0)


def gaussian_nll(mean: Array, var: Array, target: Array) -> Array:
    """``[D]`` mean negative log-likelihood of the targets under ``N(mean, var)``
    per dimension (valid rows only)."""
    mean, var, target = _check(mean, var, target)
    valid = _valid(mean, var, target)[:, None]
    safe = jnp.where(valid, var, 1.0)
    nll = 0.5 * (jnp.log(2 * jnp.pi * safe) + (target - mean) ** 2 / safe)
    return jnp.where(valid, nll, 0.0).sum(axis=0) / jnp.maximum(valid.sum(), 1)


def pit(mean: Array, var: Array, target: Array) -> Array:
    """``[N, D]`` probability integral transform ``Phi((target - mean) / std)``:
    the predictive CDF at the real value, uniform on ``[0, 1]`` for a
    calibrated model; NaN on invalid rows (as in :func:`calibration`).

    Raises:
      ValueError: shapes that differ or are not ``[N, D]``.
    """
    mean, var, target = _check(mean, var, target)
    valid = _valid(mean, var, target)[:, None]
    z = (target - mean) / jnp.sqrt(jnp.where(valid, var, 1.0))
    return jnp.where(valid, ndtr(z), jnp.nan)


def recalibrate_pit(reference: Array, values: Array) -> Array:
    """Quantile recalibration (Kuleshov et al., 2018): ``values [M, D]`` mapped
    through the empirical CDF, per dimension, of the valid (non-NaN)
    ``reference [N, D]`` PIT values of a fitting set. The map is monotone, so
    it only relabels the predictive quantiles: on the fitting set the result
    is uniform, which a single variance factor cannot achieve when the
    errors are not Gaussian. NaN stays NaN.

    Raises:
      ValueError: ``reference`` and ``values`` not ``[., D]`` with the same ``D``.
    """
    reference, values = jnp.asarray(reference), jnp.asarray(values)
    if reference.ndim != 2 or values.ndim != 2 or reference.shape[1] != values.shape[1]:
        raise ValueError(
            "recalibrate_pit: reference and values must be [N, D] and [M, D]; got "
            f"{reference.shape}, {values.shape}"
        )
    return _recalibrate_pit(reference, values)


@jax.jit
def _recalibrate_pit(reference, values):
    count = jnp.sum(~jnp.isnan(reference), axis=0)  # [D]
    ordered = jnp.sort(jnp.where(jnp.isnan(reference), jnp.inf, reference), axis=0)

    def per_dim(ref, v, n):
        return jnp.searchsorted(ref, v, side="right") / jnp.maximum(n, 1)

    out = jax.vmap(per_dim, in_axes=(1, 1, 0), out_axes=1)(ordered, values, count)
    return jnp.where(jnp.isnan(values) | (count == 0)[None], jnp.nan, out)


def pit_calibration(values: Array, levels=DEFAULT_LEVELS) -> Calibration:
    """:class:`Calibration` of PIT values ``[N, D]`` (NaN rows left out): the
    central ``p`` interval holds ``|u - 1/2| <= p / 2``. For raw Gaussian PIT
    values this equals :func:`calibration` of the Gaussian itself.
    """
    values = jnp.asarray(values)
    levels_np = np.asarray(levels, np.float64)
    if values.ndim != 2:
        raise ValueError(f"pit_calibration: values must be [N, D], got {values.shape}")
    if levels_np.ndim != 1 or not np.all((levels_np > 0) & (levels_np < 1)):
        raise ValueError(f"pit_calibration: levels must be in (0, 1), got {levels!r}")
    return _pit_calibration(values, jnp.asarray(levels_np, jnp.float32))


@jax.jit
def _pit_calibration(values, levels):
    valid = jnp.all(~jnp.isnan(values), axis=-1)
    dist = jnp.abs(jnp.where(valid[:, None], values, 0.5) - 0.5)  # [N, D]
    inside = (dist[None] <= levels[:, None, None] / 2) & valid[None, :, None]
    count = valid.sum()
    coverage = inside.sum(axis=1) / count
    ece = jnp.abs(coverage - levels[:, None]).mean(axis=0)
    return Calibration(levels, coverage, ece, ece.mean(), count.astype(jnp.int32))
