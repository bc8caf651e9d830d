"""Gradient MPC and the CEM-then-gradient hybrid: exact optimum of a smooth problem,
the Planner interface shared with shooting, PETS's switch, and bad input."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import pytest

from mbrl_jax import envs, models
from mbrl_jax.agents import pets
from mbrl_jax.core.types import Model
from mbrl_jax.planners.gradient import GradientConfig, make_any_planner, make_gradient_planner
from mbrl_jax.planners.shooting import ActionSpec, MPCConfig, make_search

SPEC = ActionSpec(low=(-1.0,), high=(1.0,))


def quadratic_model() -> Model:
    """``x' = x + a``, reward ``-x'^2 - 0.1 a^2``: the optimum from ``x`` is known in
    closed form (a linear-quadratic regulator, solved below by Riccati recursion)."""

    def step(params, key, x, a):
        nxt = x + a
        return nxt, -(nxt[0] ** 2) - 0.1 * a[0] ** 2, jnp.bool_(False)

    return Model(init=lambda key: None, step=step)


def lqr_first_action(x0: float, horizon: int) -> tuple[float, float]:
    """Optimal first action and optimal return of the quadratic model (no bounds bind)."""
    # Value after k remaining steps: V_k(x) = -p_k x^2; one step: max_a -(x+a)^2 - 0.1 a^2 -
    # p (x+a)^2 gives a = -(1+p) x / (1.1+p) and p' = 0.1 (1+p) / (1.1+p).
    p = 0.0
    gains = []
    for _ in range(horizon):
        gains.append((1 + p) / (1.1 + p))
        p = 0.1 * (1 + p) / (1.1 + p)
    return -gains[-1] * x0, -p * x0**2


@pytest.mark.parametrize("method", ["gradient", "cem_gradient"])
def test_finds_the_lqr_optimum(method):
    horizon, x0 = 4, 0.6
    config = GradientConfig(
        method=method,
        horizon=horizon,
        num_sequences=2,
        num_iterations=150,
        num_particles=1,
        learning_rate=0.05,
        cem_population=16,
        cem_elites=4,
    )
    planner = make_gradient_planner(config, quadratic_model(), SPEC)
    plan = jax.jit(planner.plan)
    result, _ = plan(None, jax.random.key(0), jnp.array([x0]), planner.init())
    action, best = lqr_first_action(x0, horizon)
    assert float(result.action[0]) == pytest.approx(action, abs=0.01)
    assert float(result.predicted_return) == pytest.approx(best, abs=1e-3)
    assert result.sequence.shape == (horizon, 1)
    assert result.iteration_best.shape == (150,)
    # The best objective found never decreases along the Adam steps.
    assert bool(jnp.all(jnp.diff(result.iteration_best) >= 0))


def test_hybrid_is_at_least_as_good_as_its_cem_stage():
    config = GradientConfig(
        method="cem_gradient", horizon=5, num_sequences=2, num_iterations=10, num_particles=1
    )
    model = quadratic_model()
    start = jnp.array([0.9])
    init, search = make_search(config.cem_config(), model, SPEC)
    cem_result, _, _ = jax.jit(search)(None, jax.random.key(3), start, init())
    planner = make_gradient_planner(config, model, SPEC)
    # Same key split as the hybrid's: its CEM stage gets the first of three keys.
    result, _ = jax.jit(planner.plan)(None, jax.random.key(9), start, planner.init())
    search_key = jax.random.split(jax.random.key(9), 3)[0]
    cem_same, _, _ = jax.jit(search)(None, search_key, start, init())
    assert float(result.predicted_return) >= float(cem_same.predicted_return) - 1e-4
    assert math.isfinite(float(cem_result.predicted_return))


def test_warm_start_shifts_the_solution_and_respects_bounds():
    config = GradientConfig(horizon=6, num_sequences=3, num_iterations=80, num_particles=1)
    planner = make_gradient_planner(config, quadratic_model(), SPEC)
    result, state = jax.jit(planner.plan)(None, jax.random.key(1), jnp.array([3.0]), planner.init())
    assert bool(jnp.all(jnp.abs(result.sequence) <= 1.0))
    # x0 = 3 is beyond one step's reach: the first action pushes at (nearly) full force.
    assert float(result.action[0]) < -0.95
    assert jnp.allclose(state.mean[:-1], result.sequence[1:])
    assert jnp.allclose(state.mean[-1], 0.0)


def test_plans_through_the_ensemble_and_does_not_recompile():
    env, params = envs.make("Pendulum-v1")
    ensemble = models.Ensemble(
        models.EnsembleConfig(ensemble_size=2, num_elites=2, hidden_size=16, num_layers=2).for_env(
            env, params
        )
    )
    task = envs.task_functions(env)
    model = models.with_task(models.ensemble_model(ensemble), task.reward_fn, task.termination_fn)
    config = GradientConfig(horizon=5, num_sequences=2, num_iterations=3, num_particles=2)
    planner = make_any_planner(config, model, ActionSpec.from_space(env.action_space(params)))
    plan = jax.jit(planner.plan)
    ens = ensemble.init(jax.random.key(0))
    state = planner.init()
    for i in range(2):
        result, state = plan(ens, jax.random.key(i), jnp.array([1.0, 0.0, 0.1]), state)
    assert plan._cache_size() == 1
    assert result.action.shape == (1,)
    assert bool(jnp.all(jnp.isfinite(result.sequence)))
    assert bool(jnp.all(jnp.abs(result.action) <= 2.0))


def test_pets_runs_with_a_gradient_planner():
    env, params = envs.make("ContinuousCartPole")
    base = pets.preset("ContinuousCartPole", "gradient")
    assert isinstance(base.planner, GradientConfig)
    config = dataclasses.replace(
        base,
        num_trials=2,
        trial_length=15,
        num_epochs=2,
        model=dataclasses.replace(base.model, hidden_size=16, num_layers=2),
        planner=dataclasses.replace(base.planner, horizon=4, num_iterations=2),
    )
    out = jax.jit(pets.make_train(config, env, params))(jax.random.key(0))
    assert out.trial_returns.shape == (2,)
    assert bool(jnp.all(jnp.isfinite(out.predicted_return)))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("method", "adam"),
        ("horizon", 0),
        ("num_sequences", 0),
        ("num_iterations", 0),
        ("num_particles", 0),
        ("learning_rate", 0.0),
        ("learning_rate", float("nan")),
        ("init_std", -1.0),
        ("beta", float("inf")),
        ("discount", 1.5),
        ("max_grad_norm", 0.0),
    ],
)
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        GradientConfig(**{field: value})


def test_hybrid_needs_enough_elites():
    with pytest.raises(ValueError, match="cem_elites"):
        GradientConfig(method="cem_gradient", num_sequences=8, cem_elites=4)


def test_discrete_actions_and_tabular_models_are_refused():
    with pytest.raises(ValueError, match="continuous actions"):
        make_gradient_planner(GradientConfig(), quadratic_model(), ActionSpec(num_actions=2))
    tabular = models.count_model(5, 2)
    planner = make_gradient_planner(GradientConfig(horizon=2), tabular, SPEC)
    with pytest.raises(ValueError, match="differentiable model"):
        planner.plan(
            tabular.init(jax.random.key(0)), jax.random.key(1), jnp.int32(0), planner.init()
        )
    with pytest.raises(ValueError, match="MPCConfig or a GradientConfig"):
        make_any_planner({"method": "cem"}, quadratic_model(), SPEC)
    with pytest.raises(ValueError, match="discrete"):
        pets.preset("CartPole-v1", "gradient")
    with pytest.raises(ValueError, match="planner must be one of"):
        pets.preset("Pendulum-v1", "newton")


def test_any_planner_builds_shooting_for_mpc_configs():
    planner = make_any_planner(
        MPCConfig(method="cem", horizon=3, population=8, num_elites=2, num_particles=1),
        quadratic_model(),
        SPEC,
    )
    result, _ = jax.jit(planner.plan)(None, jax.random.key(0), jnp.array([0.5]), planner.init())
    assert result.sequence.shape == (3, 1)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--env", "CartPole-v1", "--agents", "pets:gradient"], "needs continuous actions"),
        (["--env", "Pendulum-v1", "--agents", "pets:newton"], "planner must be one of"),
        (["--env", "CartPole-v1", "--agents", "pets", "--planner", "cem-gradient"], "discrete"),
    ],
)
def test_compare_refuses_a_planner_that_cannot_run(argv, message, tmp_path, capsys):
    from mbrl_jax import cli

    code = cli.main(["compare", *argv, "--seeds", "1", "--quiet", "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
