"""Model diagnostics for any :class:`~mbrl_jax.core.types.Model`: k-step
compounding error and its growth, the calibration of a Gaussian predictive
distribution (reliability, ECE, a per-dimension variance recalibration),
one-step hold-out error and K-fold cross-validation of a fit, and the
exploitation gap of a planner (the model's promised return against the real
one)."""

from mbrl_jax.diagnostics.calibration import (
    DEFAULT_LEVELS,
    Calibration,
    calibration,
    fit_variance_scale,
    gaussian_nll,
    pit,
    pit_calibration,
    recalibrate_pit,
)
from mbrl_jax.diagnostics.compounding import (
    CompoundingError,
    Growth,
    Windows,
    compounding_error,
    growth,
    windows,
)
from mbrl_jax.diagnostics.exploitation import ExploitationGap, exploitation_gap, open_loop_return
from mbrl_jax.diagnostics.validation import (
    CrossValidation,
    OneStepError,
    cross_validate,
    one_step_error,
    predictive,
)

__all__ = [
    "DEFAULT_LEVELS",
    "Calibration",
    "CompoundingError",
    "CrossValidation",
    "ExploitationGap",
    "Growth",
    "OneStepError",
    "Windows",
    "calibration",
    "compounding_error",
    "cross_validate",
    "exploitation_gap",
    "fit_variance_scale",
    "gaussian_nll",
    "growth",
    "one_step_error",
    "open_loop_return",
    "pit",
    "pit_calibration",
    "predictive",
    "recalibrate_pit",
    "windows",
]
