"""Validation helpers: every config checks its fields with these on construction.

Each raises ``ValueError`` naming ``Class.field``, the allowed range and the
value given. Floats must be finite unless the range is open to infinity and
``allow_inf`` is set; NaN never passes. Integer fields reject floats and bools.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any


def _name(config: Any, field: str) -> str:
    return f"{type(config).__qualname__}.{field}"


def range_text(low, high, low_open, high_open) -> str:
    """``[low, high)``-style text of a range (``None`` = unbounded)."""
    left = "(" if low_open or low is None else "["
    right = ")" if high_open or high is None else "]"
    lo = "-inf" if low is None else f"{low}"
    hi = "inf" if high is None else f"{high}"
    return f"{left}{lo}, {hi}{right}"


MAX_STEPS = 2**31 - 1
"""The most steps a budget may hold: step counters are int32."""


def check_int_value(name: str, value, low: int | None = None, high: int | None = None):
    """``value`` if it is an integer (not a bool or float) in ``[low, high]``, else a
    ``ValueError`` whose message starts with ``name`` (none when empty)."""
    lead = f"{name} " if name else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(
            f"{lead}must be an integer in {range_text(low, high, False, False)}, "
            f"got {value!r} ({type(value).__name__})"
        )
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{lead}must be in {range_text(low, high, False, False)}, got {value}")
    return value


def check_float_value(
    name: str,
    value,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
) -> float:
    """``float(value)`` if it is a real number in the range (NaN never, inf only
    if allowed), else a ``ValueError`` whose message starts with ``name``."""
    lead = f"{name} " if name else ""
    text = range_text(low, high, low_open, high_open)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{lead}must be a number in {text}, got {value!r}")
    value = float(value)
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise ValueError(f"{lead}must be a finite number in {text}, got {value}")
    too_low = low is not None and (value < low or (low_open and value == low))
    too_high = high is not None and (value > high or (high_open and value == high))
    if too_low or too_high:
        raise ValueError(f"{lead}must be in {text}, got {value}")
    return value


def check_int(config: Any, field: str, low: int | None = None, high: int | None = None) -> None:
    """``config.field`` must be an integer (not a bool or float) in ``[low, high]``."""
    check_int_value(_name(config, field), getattr(config, field), low, high)


def check_float(
    config: Any,
    field: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
) -> None:
    """``config.field`` must be a real number in the range; NaN never, inf only if allowed."""
    check_float_value(
        _name(config, field), getattr(config, field), low, high, low_open, high_open, allow_inf
    )


def check_range(
    config: Any,
    field: str,
    low=None,
    high=None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Integer or float range check, chosen by the type of ``low``/``high``.

    Integer bounds (``low=1``) make an integer field, checked with
    :func:`check_int` (floats rejected); float bounds (``low=0.0``) a float
    field, checked with :func:`check_float` (finite values only).
    """
    bounds = [b for b in (low, high) if b is not None]
    if bounds and all(isinstance(b, int) for b in bounds) and not (low_open or high_open):
        check_int(config, field, low, high)
    else:
        check_float(config, field, low, high, low_open, high_open)


def check_choice(config: Any, field: str, choices: Iterable[Any]) -> None:
    """``config.field`` must be one of ``choices``."""
    choices = tuple(choices)
    value = getattr(config, field)
    if value not in choices:
        raise ValueError(f"{_name(config, field)} must be one of {choices}, got {value!r}")
