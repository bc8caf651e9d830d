import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_jax import envs
from mbrl_jax.models.ensemble import Ensemble, EnsembleConfig
from mbrl_jax.models.true_env import env_model_step
from mbrl_jax.planners.shooting import ActionSpec, MPCConfig, batched, colored_noise, make_planner
from mbrl_jax.replay import buffer_add, buffer_init


def cartpole_data(key, n):
    env, params = envs.make("ContinuousCartPole")

    def step(carry, k):
        obs, state = carry
        k1, k2 = jax.random.split(k)
        action = jax.random.uniform(k1, (1,), minval=-1, maxval=1)
        obs2, state2, r, term, _, info = env.step(k2, state, action, params)
        item = {
            "obs": obs,
            "action": action,
            "next_obs": info["final_observation"],
            "reward": r,
            "done": term,
        }
        return (obs2, state2), item

    obs, state = env.reset(key, params)
    return jax.lax.scan(step, (obs, state), jax.random.split(key, n))[1]


@pytest.fixture(scope="module")
def fitted():
    ens = Ensemble(
        EnsembleConfig(
            obs_dim=4,
            action_dim=1,
            ensemble_size=3,
            num_elites=2,
            hidden_size=64,
            num_layers=2,
            batch_size=32,
        )
    )
    data = cartpole_data(jax.random.key(0), 300)
    buf = buffer_add(buffer_init(jax.tree.map(lambda x: x[0], data), 400), data)
    fit = jax.jit(ens.fit, static_argnums=3)
    state, info = fit(jax.random.key(1), ens.init(jax.random.key(2)), buf, 30)
    return ens, fit, state, info, buf


def test_ensemble_fit_learns_dynamics(fitted):
    ens, _, state, info, _ = fitted
    assert float(info.train_loss[-1]) < float(info.train_loss[0]) - 1.0
    assert state.params["params"]["Dense_0"]["kernel"].shape[0] == 3  # member axis
    assert info.val_loss.shape == (3,) and state.elites.shape == (2,)
    assert float(info.val_loss[state.elites[0]]) == float(jnp.min(info.val_loss))
    test = cartpole_data(jax.random.key(9), 100)
    pred = ens.predict(state, test["obs"], test["action"])
    error = np.abs(np.asarray(pred["mean"] - test["next_obs"])).mean(0)
    change = np.abs(np.asarray(test["next_obs"] - test["obs"])).mean(0)
    assert np.all(error < 0.3 * change)
    assert pred["epistemic_var"].shape == (100, 4) and pred["member_mean"].shape == (3, 100, 4)
    assert bool(jnp.all(pred["aleatoric_var"] > 0))


@pytest.mark.parametrize("mode", ["tsinf", "ts1", "expectation"])
def test_particle_propagation_modes(fitted, mode):
    ens, _, state, _, _ = fitted
    obs = jnp.tile(jnp.array([[0.0, 0.1, 0.02, -0.1]]), (6, 1))
    nxt, reward, term = ens.step_particles(state, jax.random.key(0), obs, jnp.zeros((6, 1)), mode)
    assert nxt.shape == (6, 4) and reward.shape == (6,) and term.shape == (6,)
    if mode == "expectation":
        np.testing.assert_allclose(np.asarray(nxt[0]), np.asarray(nxt[5]), atol=1e-6)
    with pytest.raises(ValueError):
        ens.step_particles(
            state,
            jax.random.key(0),
            obs[:4],
            jnp.zeros((4, 1)),
            "tsinf" if mode != "expectation" else "nope",
        )


def test_fit_skips_nan_rows_and_does_not_recompile(fitted):
    ens, fit, state, _, buf = fitted
    bad = buf.replace(data={**buf.data, "next_obs": buf.data["next_obs"].at[5].set(jnp.nan)})
    state2, info = fit(jax.random.key(3), state, bad, 30)
    assert int(info.dropped_nan) == 1
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(state2.params))
    smaller = buf.replace(size=jnp.int32(120))
    fit(jax.random.key(4), state, smaller, 30)
    assert fit._cache_size() == 1


@pytest.mark.parametrize("method", ["cem", "icem", "mppi", "random"])
def test_planners_balance_continuous_cartpole_with_true_model(method):
    env, params = envs.make("ContinuousCartPole")
    config = MPCConfig(
        method=method, horizon=12, population=64, num_elites=8, num_iterations=2, num_particles=1
    )
    planner = make_planner(
        config,
        batched(env_model_step(env, params)),
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
        batched(env_model_step(env, params)),
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
    def step(params, key, x, a):
        return x + a, jnp.zeros(x.shape[0]), jnp.zeros(x.shape[0], bool)

    planner = make_planner(
        MPCConfig(method=method, horizon=5, population=64, num_elites=8, num_particles=1),
        step,
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
    def step(params, key, x, a):
        return x, a.astype(jnp.float32), jnp.zeros(x.shape[0], bool)

    planner = make_planner(
        MPCConfig(horizon=4, population=32, num_elites=4, num_iterations=2, num_particles=1),
        step,
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
        make_planner(MPCConfig(method="mppi"), lambda *a: a, ActionSpec(num_actions=2))
    with pytest.raises(ValueError, match="num_elites"):
        EnsembleConfig(obs_dim=2, action_dim=1, ensemble_size=3, num_elites=4)


def test_ensemble_rejects_mismatched_shapes(fitted):
    ens, _, state, _, buf = fitted
    obs, key = jnp.zeros((6, 4)), jax.random.key(0)
    with pytest.raises(ValueError, match="obs_dim=4"):
        ens.predict(state, jnp.zeros((6, 3)), jnp.zeros((6, 1)))
    with pytest.raises(ValueError, match="action_dim=1"):
        ens.step_particles(state, key, obs, jnp.zeros((6, 2)))
    with pytest.raises(ValueError, match=r"actions of shape \(6, 1\)"):
        ens.step_particles(state, key, obs, jnp.zeros((5, 1)))
    wrong = buf.replace(data={**buf.data, "next_obs": buf.data["next_obs"][:, :3]})
    with pytest.raises(ValueError, match="next_obs"):
        ens.fit(key, state, wrong, 1)
    discrete = Ensemble(EnsembleConfig(obs_dim=4, action_dim=2, discrete_actions=True))
    with pytest.raises(ValueError, match="integer actions"):
        discrete.predict(discrete.init(key), obs, jnp.zeros((6, 1)))


def test_features_major_forward_matches_the_flax_module():
    ens = Ensemble(
        EnsembleConfig(
            obs_dim=4,
            action_dim=1,
            ensemble_size=3,
            num_elites=3,
            hidden_size=16,
            num_layers=3,
            learn_reward=True,
            learn_termination=True,
        )
    )
    state = ens.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (3, 7, 5))
    for a, b in zip(
        ens.apply_members(state.params, x),
        ens.apply_members_features_major(state.params, x),
        strict=True,
    ):
        assert a.shape == b.shape
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
