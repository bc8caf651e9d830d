import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_jax import envs
from mbrl_jax.core.types import Model
from mbrl_jax.models.true_env import env_model
from mbrl_jax.planners.shooting import ActionSpec, MPCConfig, colored_noise, make_planner


def integrator(reward_of_action: bool = False) -> Model:
    """x' = x + a; reward 0 (or the action itself); never done."""

    def step(params, key, x, a):
        reward = jnp.asarray(a, jnp.float32).reshape(()) if reward_of_action else jnp.float32(0)
        return x + (0 if reward_of_action else a), reward, jnp.bool_(False)

    return Model(init=lambda key: None, step=step)


@pytest.mark.parametrize("method", ["cem", "icem", "mppi", "random"])
def test_planners_balance_continuous_cartpole_with_true_model(method):
    env, params = envs.make("ContinuousCartPole")
    config = MPCConfig(
        method=method, horizon=12, population=64, num_elites=8, num_iterations=2, num_particles=1
    )
    planner = make_planner(
        config,
        env_model(env, params),
        ActionSpec.from_space(env.action_space(params)),
    )

    def run(key):
        obs, state = env.reset(key, params)

        def body(carry, k):
            state, ps, alive, total = carry
            result, ps = planner.plan(None, k, state, ps)
            _, state, r, term, _, _ = env.step(k, state, result.action, params)
            return (state, ps, alive * (1 - term), total + alive * r), result.predicted_return

        (_, _, _, total), predicted = jax.lax.scan(
            body, (state, planner.init(), 1.0, 0.0), jax.random.split(key, 100)
        )
        return total, predicted

    total, predicted = jax.jit(run)(jax.random.key(0))
    threshold = 60.0 if method == "random" else 100.0
    assert float(total) >= threshold
    assert float(predicted[0]) <= 12.0


def test_discrete_cem_with_true_model():
    env, params = envs.make("CartPole-v1")
    planner = make_planner(
        MPCConfig(horizon=10, population=32, num_elites=4, num_iterations=2, num_particles=1),
        env_model(env, params),
        ActionSpec(num_actions=2),
    )
    obs, state = env.reset(jax.random.key(0), params)
    result, ps = jax.jit(planner.plan)(None, jax.random.key(1), state, planner.init())
    assert result.action.dtype == jnp.int32 and result.sequence.shape == (10,)
    assert ps.mean.shape == (10, 2)
    np.testing.assert_allclose(np.asarray(ps.mean.sum(-1)), 1.0, atol=1e-5)


@pytest.mark.parametrize("method", ["cem", "icem", "mppi", "random"])
def test_terminal_value_steers_the_plan(method):
    # A 1-D integrator with no reward: only the terminal value -(x_H - 5)^2
    # tells the planner to push right, as fast as the bounds allow.
    planner = make_planner(
        MPCConfig(method=method, horizon=5, population=64, num_elites=8, num_particles=1),
        integrator(),
        ActionSpec(low=(-1.0,), high=(1.0,)),
        terminal_value_fn=lambda x: -((x[:, 0] - 5.0) ** 2),
    )
    result, _ = jax.jit(planner.plan)(None, jax.random.key(0), jnp.zeros(1), planner.init())
    sequence = np.asarray(result.sequence)
    assert np.all(np.abs(sequence) <= 1.0)
    assert float(result.action[0]) > 0.3
    assert float(sequence.sum()) > 3.0  # heads most of the way to x = 5


def test_discrete_cem_recovers_from_collapsed_warm_start():
    # Reward = action: the warm start says "always 0" with probability 1; the
    # uniform mixed back in must still let the planner find action 1.
    planner = make_planner(
        MPCConfig(horizon=4, population=32, num_elites=4, num_iterations=2, num_particles=1),
        integrator(reward_of_action=True),
        ActionSpec(num_actions=2),
    )
    collapsed = planner.init().replace(mean=jnp.tile(jnp.array([1.0, 0.0]), (4, 1)))
    result, _ = jax.jit(planner.plan)(None, jax.random.key(0), jnp.zeros(1), collapsed)
    assert int(result.action) == 1
    assert float(result.predicted_return) == 4.0


def test_colored_noise_is_low_frequency():
    white = colored_noise(jax.random.key(0), 0.0, (2000,), 32)
    red = colored_noise(jax.random.key(0), 2.0, (2000,), 32)
    np.testing.assert_allclose(np.asarray(red.std(-1)), 1.0, atol=1e-4)
    lag1 = lambda x: float(jnp.mean(x[:, 1:] * x[:, :-1]))  # noqa: E731
    assert lag1(red) > 0.5 > abs(lag1(white))


def test_planner_bad_input():
    with pytest.raises(ValueError, match="num_elites"):
        MPCConfig(population=10, num_elites=20)
    with pytest.raises(ValueError, match="horizon"):
        MPCConfig(horizon=0)
    with pytest.raises(ValueError, match="method"):
        MPCConfig(method="genetic")
    with pytest.raises(ValueError, match="low and high"):
        ActionSpec(low=(-1.0,))
    with pytest.raises(ValueError, match="continuous actions"):
        make_planner(MPCConfig(method="mppi"), integrator(), ActionSpec(num_actions=2))
    for field, value in [
        ("beta", float("nan")),
        ("init_std", -1.0),
        ("noise_exponent", float("inf")),
        ("horizon", 2.5),
        ("alpha", float("nan")),
    ]:
        with pytest.raises(ValueError, match=f"MPCConfig.{field}"):
            MPCConfig(**{field: value})
