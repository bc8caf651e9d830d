"""Model diagnostics for any :class:`~mbrl_jax.core.types.Model`: k-step
compounding error and its growth, and the calibration of a Gaussian predictive
distribution (reliability, ECE, a per-dimension variance recalibration)."""

from mbrl_jax.diagnostics.calibration import (
    DEFAULT_LEVELS,
    Calibration,
    calibration,
    fit_variance_scale,
    gaussian_nll,
)
from mbrl_jax.diagnostics.compounding import (
    CompoundingError,
    Growth,
    Windows,
    compounding_error,
    growth,
    windows,
)

__all__ = [
    "DEFAULT_LEVELS",
    "Calibration",
    "CompoundingError",
    "Growth",
    "Windows",
    "calibration",
    "compounding_error",
    "fit_variance_scale",
    "gaussian_nll",
    "growth",
    "windows",
]
