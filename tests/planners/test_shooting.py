import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_jax import envs
from mbrl_jax.agents import pets
from mbrl_jax.core.types import Model
from mbrl_jax.models.ensemble import EnsembleConfig
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
    with pytest.raises(ValueError, match="num_particles.*num_members"):
        MPCConfig(num_particles=5, num_members=2)
    with pytest.raises(ValueError, match="MPCConfig.num_members"):
        MPCConfig(num_members=0)
    with pytest.raises(ValueError, match="MPCConfig.objective"):
        MPCConfig(objective="best_member")
    with pytest.raises(ValueError, match="MPCConfig.disagreement_bonus"):
        MPCConfig(disagreement_bonus=float("nan"))
    for config in (MPCConfig(objective="worst_member"), MPCConfig(disagreement_bonus=0.1)):
        with pytest.raises(ValueError, match="num_members must be set"):
            make_planner(config, integrator(), ActionSpec(low=(-1.0,), high=(1.0,)))


def member_model(rewards, moves=None) -> Model:
    """A batched toy ensemble of ``E = len(rewards)`` members: particle ``i``
    follows member ``i mod E`` (as TSinf does); its reward is
    ``rewards[m](action) + 0.1 * (i mod K) // E`` (a per-particle offset that
    the group means average) with ``K`` read off ``state[:, 1]``; its state's
    first entry moves by ``moves[m](action)`` (default 0). Never done."""
    e = len(rewards)
    moves = moves or [lambda a: 0.0 * a] * e

    def batch_step(params, key, states, actions):
        n = states.shape[0]
        member = jnp.arange(n) % e
        k = states[:, 1].astype(jnp.int32)
        a = jnp.asarray(actions, jnp.float32).reshape(n)
        reward = jnp.select([member == m for m in range(e)], [r(a) for r in rewards])
        reward = reward + 0.1 * ((jnp.arange(n) % k) // e)
        move = jnp.select([member == m for m in range(e)], [f(a) for f in moves])
        return states.at[:, 0].add(move), reward, jnp.zeros(n, bool)

    return Model(init=lambda key: None, step=None, batch_step=batch_step)


def test_worst_member_plans_for_the_worst_member():
    # Member 0 earns the action, member 1 minus three times it: the mean
    # prefers a = -1 everywhere, the worst member a sum of actions near 0.
    model = member_model([lambda a: a, lambda a: -3.0 * a])
    spec = ActionSpec(low=(-1.0,), high=(1.0,))
    start = jnp.array([0.0, 4.0])  # K = 4 particles, E = 2
    base = dict(method="random", horizon=3, population=512, num_particles=4, num_elites=4)
    results = {}
    for objective in ("mean_std", "worst_member"):
        planner = make_planner(MPCConfig(objective=objective, num_members=2, **base), model, spec)
        results[objective], _ = jax.jit(planner.plan)(
            None, jax.random.key(0), start, planner.init()
        )
    worst, mean = results["worst_member"], results["mean_std"]
    total = float(worst.sequence.sum())
    offset = 3 * 0.1 * 0.5  # groups g = 0, 1 of each member, 0.1 * g per step
    np.testing.assert_allclose(
        float(worst.predicted_return), min(total, -3 * total) + offset, atol=1e-5
    )
    np.testing.assert_allclose(float(worst.mean_return), -total + offset, atol=1e-5)
    assert abs(total) < 0.3  # the max-min optimum is a sum of 0
    assert float(mean.sequence.sum()) < -2.0
    assert float(mean.mean_return) == float(mean.predicted_return)  # beta = 0, mean_std
    np.testing.assert_allclose(
        float(mean.predicted_return), -float(mean.sequence.sum()) + offset, atol=1e-5
    )


def test_disagreement_bonus_seeks_or_avoids_member_disagreement():
    # Equal (zero) rewards; action 1 moves member 0's particles up and member
    # 1's down by 1 per step, action 0 moves none.
    model = member_model([lambda a: 0.0 * a] * 2, [lambda a: a, lambda a: -a])
    start = jnp.array([0.0, 4.0])
    for bonus, action in ((0.5, 1), (-0.5, 0)):
        config = MPCConfig(
            horizon=3,
            population=64,
            num_elites=4,
            num_particles=4,
            num_members=2,
            disagreement_bonus=bonus,
            discount=0.9,
        )
        planner = make_planner(config, model, ActionSpec(num_actions=2))
        result, _ = jax.jit(planner.plan)(None, jax.random.key(0), start, planner.init())
        assert np.all(np.asarray(result.sequence) == action)
        # The group means sit at +-s after s steps of action 1: variance s^2.
        # Averaged over the state's two entries (the second never moves).
        spread = sum(0.9**t * (t + 1) ** 2 / 2 for t in range(3)) if action else 0.0
        mean_return = 0.05 * (1 + 0.9 + 0.81)  # the per-particle offsets
        np.testing.assert_allclose(float(result.mean_return), mean_return, rtol=1e-5)
        np.testing.assert_allclose(
            float(result.predicted_return), mean_return + bonus * spread, rtol=1e-5
        )


def noisy_integrator() -> Model:
    """x' = x + a + 0.1 noise; reward -|x'|^2; never done."""

    def step(params, key, x, a):
        nxt = x + a + 0.1 * jax.random.normal(key, x.shape)
        return nxt, -jnp.sum(nxt**2), jnp.bool_(False)

    return Model(init=lambda key: None, step=step)


def test_new_fields_leave_mean_std_planning_unchanged():
    model, spec = noisy_integrator(), ActionSpec(low=(-1.0,), high=(1.0,))
    base = dict(
        horizon=4,
        population=16,
        num_elites=4,
        num_iterations=2,
        num_particles=4,
        beta=0.5,
        return_mean_elites=True,
    )
    outs = []
    for extra in ({}, {"num_members": 2, "disagreement_bonus": 0.0, "objective": "mean_std"}):
        planner = make_planner(MPCConfig(**base, **extra), model, spec)
        outs.append(jax.jit(planner.plan)(None, jax.random.key(1), jnp.ones(1), planner.init()))
    for a, b in zip(jax.tree.leaves(outs[0]), jax.tree.leaves(outs[1]), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # The elites' mean objective is their mean return minus beta times their mean std.
    result = outs[0][0]
    np.testing.assert_allclose(
        float(result.predicted_return),
        float(result.mean_return - 0.5 * result.return_std),
        rtol=1e-5,
    )


def test_pets_fills_num_members_from_the_ensemble():
    env, params = envs.make("ContinuousCartPole")
    SMALL = pets.Config(  # noqa: N806
        num_trials=2,
        trial_length=10,
        num_epochs=1,
        model=EnsembleConfig(ensemble_size=2, num_elites=2, hidden_size=8, num_layers=2),
        planner=MPCConfig(horizon=3, population=8, num_elites=2, num_particles=2),
    )
    for objective, bonus in (("worst_member", 0.0), ("mean_std", 1.0)):
        mpc = dataclasses.replace(SMALL.planner, objective=objective, disagreement_bonus=bonus)
        config = dataclasses.replace(SMALL, planner=mpc)
        assert pets.planner_config(config, 2).num_members == 2
        pets.make_train(config, env, params)  # make_planner would raise without it
    mpc = MPCConfig(objective="worst_member", num_particles=4, num_members=4)
    with pytest.raises(ValueError, match="num_members.*ensemble_size"):
        pets.planner_config(dataclasses.replace(SMALL, planner=mpc), 2)
    with pytest.raises(ValueError, match="tsinf"):
        pets.planner_config(dataclasses.replace(SMALL, planner=mpc, propagation="ts1"), 2)
    with pytest.raises(ValueError, match="num_particles.*ensemble_size"):
        pets.planner_config(dataclasses.replace(SMALL, planner=mpc), 3)
