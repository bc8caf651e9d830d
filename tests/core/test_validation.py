import dataclasses

import pytest

from mbrl_jax.core.validation import check_choice, check_float, check_int, check_range


@dataclasses.dataclass(frozen=True)
class Example:
    count: object = 3
    rate: object = 0.5
    mode: object = "a"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -0.1, 1.5, "0.5", True])
def test_float_fields_reject_nan_inf_and_out_of_range(value):
    with pytest.raises(ValueError, match=r"Example\.rate"):
        check_range(Example(rate=value), "rate", low=0.0, high=1.0)


@pytest.mark.parametrize("value", [1.5, 2.0, True, "3", -1])
def test_integer_fields_reject_floats_bools_and_out_of_range(value):
    with pytest.raises(ValueError, match=r"Example\.count"):
        check_range(Example(count=value), "count", low=0)


def test_valid_values_pass_and_messages_name_the_range():
    check_range(Example(), "count", low=1)
    check_range(Example(rate=1), "rate", low=0.0, high=1.0)  # an int is a valid float
    check_int(Example(count=10**12), "count", low=1)
    check_float(Example(rate=float("inf")), "rate", low=0.0, allow_inf=True)
    check_choice(Example(), "mode", ("a", "b"))
    with pytest.raises(ValueError, match=r"must be in \(0\.0, inf\), got 0\.0"):
        check_range(Example(rate=0.0), "rate", low=0.0, low_open=True)
    with pytest.raises(ValueError, match=r"one of \('a', 'b'\)"):
        check_choice(Example(mode="c"), "mode", ("a", "b"))
