"""mbrl_jax.experiments.summary.first_reaching: steps to a target along a curve."""

from mbrl_jax.experiments.summary import first_reaching


def test_first_reaching_returns_the_first_step_at_or_above_the_target():
    assert first_reaching([100, 200, 300], [-900.0, -150.0, -120.0], -200.0) == 200
    assert first_reaching([100, 200, 300], [474.9, 475.0, 500.0], 475.0) == 200
    assert first_reaching([100, 200], [-900.0, -300.0], -200.0) is None


def test_first_reaching_skips_missing_values():
    assert first_reaching([100, 200, 300], [None, -100.0, None], -200.0) == 200
    assert first_reaching([100, 200], [-900.0, None], -200.0) is None
