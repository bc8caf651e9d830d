import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_jax import envs
from mbrl_jax.core.replay import buffer_add, buffer_init
from mbrl_jax.core.types import Transition
from mbrl_jax.models.ensemble import Ensemble, EnsembleConfig, ensemble_model


def cartpole_data(key, n):
    env, params = envs.make("ContinuousCartPole")

    def step(carry, k):
        obs, state = carry
        k1, k2 = jax.random.split(k)
        action = jax.random.uniform(k1, (1,), minval=-1, maxval=1)
        obs2, state2, r, term, _, info = env.step(k2, state, action, params)
        return (obs2, state2), Transition(obs, action, r, info["final_observation"], term)

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
    pred = ens.predict(state, test.state, test.action)
    error = np.abs(np.asarray(pred["mean"] - test.next_state)).mean(0)
    change = np.abs(np.asarray(test.next_state - test.state)).mean(0)
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
    # A batch that does not split evenly over the 3 members still steps.
    nxt4, _, _ = ens.step_particles(state, jax.random.key(0), obs[:4], jnp.zeros((4, 1)), mode)
    assert nxt4.shape == (4, 4) and bool(jnp.all(jnp.isfinite(nxt4)))
    if mode == "tsinf":  # particle i follows member i mod E, in both paths
        np.testing.assert_allclose(np.asarray(nxt4[3]), np.asarray(nxt4[0]), atol=1.0)
    with pytest.raises(ValueError, match="propagation"):
        ens.step_particles(state, jax.random.key(0), obs[:4], jnp.zeros((4, 1)), "nope")


def test_fit_skips_nan_rows_and_does_not_recompile(fitted):
    ens, fit, state, _, buf = fitted
    bad = buf.replace(data=buf.data._replace(next_state=buf.data.next_state.at[5].set(jnp.nan)))
    state2, info = fit(jax.random.key(3), state, bad, 30)
    assert int(info.dropped_nan) == 1
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(state2.params))
    smaller = buf.replace(size=jnp.int32(120))
    fit(jax.random.key(4), state, smaller, 30)
    assert fit._cache_size() == 1


def test_one_huge_entry_does_not_poison_the_fit(fitted):
    ens, fit, state, _, buf = fitted
    # 1e30 is finite in float32 but its square is not: before, the normaliser's
    # std became inf and every prediction NaN, with normal-looking losses.
    huge = buf.replace(data=buf.data._replace(state=buf.data.state.at[7, 0].set(1e30)))
    state2, info = fit(jax.random.key(3), state, huge, 30)
    assert int(info.dropped_extreme) == 1 and int(info.dropped_nan) == 0
    assert int(info.num_used) == int(buf.size) - 1
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(state2))
    assert bool(jnp.all(jnp.isfinite(info.train_loss)))
    pred = ens.predict(state2, buf.data.state[:16], buf.data.action[:16])
    assert bool(jnp.all(jnp.isfinite(pred["mean"])))
    assert fit._cache_size() == 1


def test_fit_on_nothing_says_so(fitted):
    ens, fit, state, _, buf = fitted
    for empty in (
        buf.replace(size=jnp.int32(0)),
        buf.replace(data=buf.data._replace(state=jnp.full_like(buf.data.state, jnp.nan))),
    ):
        state2, info = fit(jax.random.key(5), state, empty, 30)
        assert int(info.num_used) == 0 and int(info.gradient_steps) == 0
        assert bool(jnp.all(jnp.isnan(info.train_loss))) and bool(jnp.all(jnp.isnan(info.val_loss)))
        for before, after in zip(
            jax.tree.leaves(state.params), jax.tree.leaves(state2.params), strict=True
        ):
            np.testing.assert_array_equal(np.asarray(before), np.asarray(after))


def test_max_abs_value_validated():
    for bad in (0.0, -1.0, float("nan"), float("inf"), 1e16):
        with pytest.raises(ValueError, match="max_abs_value"):
            EnsembleConfig(max_abs_value=bad)


def test_ensemble_rejects_mismatched_shapes(fitted):
    ens, _, state, _, buf = fitted
    obs, key = jnp.zeros((6, 4)), jax.random.key(0)
    with pytest.raises(ValueError, match="obs_dim=4"):
        ens.predict(state, jnp.zeros((6, 3)), jnp.zeros((6, 1)))
    with pytest.raises(ValueError, match="action_dim=1"):
        ens.step_particles(state, key, obs, jnp.zeros((6, 2)))
    with pytest.raises(ValueError, match=r"actions of shape \(6, 1\)"):
        ens.step_particles(state, key, obs, jnp.zeros((5, 1)))
    wrong = buf.replace(data=buf.data._replace(next_state=buf.data.next_state[:, :3]))
    with pytest.raises(ValueError, match="next_state"):
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


def test_single_state_step_and_model_contract(fitted):
    ens, _, state, _, buf = fitted
    obs, action = jnp.array([0.0, 0.1, 0.02, -0.1]), jnp.zeros(1)
    for mode in ("ts1", "tsinf", "expectation"):
        model = ensemble_model(ens, mode, num_epochs=2)
        nxt, reward, done = jax.jit(model.step)(state, jax.random.key(0), obs, action)
        assert nxt.shape == (4,) and reward.shape == () and done.shape == ()
        # One state: the prediction lies near what the members predict for it.
        mean = ens.predict(state, obs[None], action[None])["member_mean"][:, 0]
        assert float(jnp.min(jnp.abs(mean - nxt).max(-1))) < 0.5
    refit = jax.jit(model.update)(state, jax.random.key(1), buf)
    assert jax.tree.structure(refit) == jax.tree.structure(state)


def test_for_env_reads_sizes_and_bad_sizes_are_rejected():
    env, params = envs.make("CartPole-v1")
    config = EnsembleConfig().for_env(env, params)
    assert (config.obs_dim, config.action_dim, config.discrete_actions) == (4, 2, True)
    with pytest.raises(ValueError, match="obs_dim and action_dim must be set"):
        Ensemble(EnsembleConfig())
    for field, value in [
        ("weight_decay", -1.0),
        ("learning_rate", float("nan")),
        ("holdout_ratio", 1.0),
        ("ensemble_size", 0),
        ("hidden_size", 2.5),
    ]:
        with pytest.raises(ValueError, match=f"EnsembleConfig.{field}"):
            EnsembleConfig(**{field: value})


def test_fitted_ensemble_checkpoint_round_trip(fitted, tmp_path):
    from mbrl_jax.core import checkpoint

    ens, _, state, _, buf = fitted
    checkpoint.save(tmp_path / "ensemble", state, {"what": "fitted ensemble"})
    like = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
    restored, meta = checkpoint.restore(tmp_path / "ensemble", like)
    assert meta == {"what": "fitted ensemble"}
    obs, action = buf.data.state[:16], buf.data.action[:16]
    want, got = ens.predict(state, obs, action), ens.predict(restored, obs, action)
    for name in want:
        np.testing.assert_array_equal(np.asarray(want[name]), np.asarray(got[name]))
