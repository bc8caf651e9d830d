import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_jax.core.replay import buffer_add, buffer_init
from mbrl_jax.models.ensemble import EnsembleConfig, ensemble_model, make_ensemble
from mbrl_jax.models.sampled import SampledEnsemble, SampledState
from tests.models.test_ensemble import cartpole_data

SMALL = dict(obs_dim=4, action_dim=1, ensemble_size=4, num_elites=4, hidden_size=32, num_layers=2)


def small(kind, **kw):
    return make_ensemble(EnsembleConfig(**{**SMALL, "batch_size": 32, **kw}, uncertainty=kind))


@pytest.fixture(scope="module")
def data():
    train = cartpole_data(jax.random.key(0), 400)
    test = cartpole_data(jax.random.key(9), 200)
    buf = buffer_add(buffer_init(jax.tree.map(lambda x: x[0], train), 400), train)
    return buf, test


def test_make_ensemble_picks_the_kind():
    assert type(small("bootstrap")).__name__ == "Ensemble"
    assert isinstance(small("dropout"), SampledEnsemble)
    assert isinstance(small("bayesian"), SampledEnsemble)


@pytest.mark.parametrize(
    "field,value",
    [
        ("uncertainty", "mc"),
        ("dropout_rate", 1.0),
        ("dropout_rate", float("nan")),
        ("prior_std", 0.0),
        ("posterior_std_init", float("inf")),
        ("kl_weight", -1.0),
    ],
)
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        EnsembleConfig(**SMALL, **{field: value})


def manual_forward(p, x, masks):
    """The dropout network by hand: masks on the hidden outputs."""
    h = x
    for i in range(2):
        h = jax.nn.silu(h @ p[f"Dense_{i}"]["kernel"] + p[f"Dense_{i}"]["bias"]) * masks[i]
    return h @ p["Dense_2"]["kernel"] + p["Dense_2"]["bias"]


def test_dropout_samples_are_masks_on_hidden_outputs():
    ens = small("dropout", dropout_rate=0.5)
    state = jax.jit(ens.init)(jax.random.key(0))
    p = jax.tree.map(lambda v: v[0], state.posterior)["params"]
    x = jax.random.normal(jax.random.key(1), (7, 5))
    mean = ens.apply_members(state.params, jnp.broadcast_to(x, (4, 7, 5)))[0]
    for m in range(4):
        # Recover member m's masks from its scaled kernels (kept rows x 2, dropped rows 0).
        mask0 = state.params["params"]["Dense_1"]["kernel"][m][:, 0] / p["Dense_1"]["kernel"][:, 0]
        mask1 = state.params["params"]["Dense_2"]["kernel"][m][:, 0] / p["Dense_2"]["kernel"][:, 0]
        assert set(np.round(np.asarray(mask0), 4)) <= {0.0, 2.0}
        # Every head reads the last hidden layer through the same mask.
        mask1_logvar = (
            state.params["params"]["Dense_3"]["kernel"][m][:, 0] / p["Dense_3"]["kernel"][:, 0]
        )
        np.testing.assert_allclose(mask1, mask1_logvar, rtol=1e-5)
        np.testing.assert_allclose(
            mean[m], manual_forward(p, x, [mask0, mask1]), rtol=1e-4, atol=1e-5
        )
    # Different members drew different masks.
    assert float(jnp.var(mean, axis=0).mean()) > 0


def test_dropout_rate_zero_gives_identical_samples():
    ens = small("dropout", dropout_rate=0.0)
    state = jax.jit(ens.init)(jax.random.key(0))
    kernel = state.params["params"]["Dense_1"]["kernel"]
    np.testing.assert_array_equal(kernel[0], kernel[3])


def test_bayesian_kl_matches_closed_form():
    ens = small("bayesian", prior_std=0.5, posterior_std_init=0.1)
    state = jax.jit(ens.init)(jax.random.key(0))
    total = 0.0
    for path, mu in jax.tree.leaves_with_path(state.posterior["mean"]):
        if "logvar" in jax.tree_util.keystr(path):
            continue
        mu = np.asarray(mu, np.float64)
        sd = 0.1
        total += np.sum(np.log(0.5 / sd) + (sd**2 + mu**2) / (2 * 0.25) - 0.5)
    np.testing.assert_allclose(float(ens.kl(state.posterior)), total, rtol=1e-4)


def test_bayesian_samples_spread_with_the_posterior_std():
    ens = small("bayesian", posterior_std_init=0.05)
    state = jax.jit(ens.init)(jax.random.key(0))
    kernel = np.asarray(state.params["params"]["Dense_0"]["kernel"])
    mean = np.asarray(state.posterior["mean"]["params"]["Dense_0"]["kernel"][0])
    np.testing.assert_allclose((kernel - mean).std(), 0.05, rtol=0.1)
    # The log-variance bounds are point estimates, the same in every sample.
    bounds = np.asarray(state.params["params"]["max_logvar"])
    np.testing.assert_array_equal(bounds[0], bounds[-1])


@pytest.mark.parametrize("kind", ["dropout", "bayesian"])
def test_sampled_models_learn_and_split_uncertainty(kind, data):
    buf, test = data
    ens = small(kind)
    fit = jax.jit(ens.fit, static_argnums=3)
    fresh = jax.jit(ens.init)(jax.random.key(2))
    state, info = fit(jax.random.key(1), fresh, buf, 15)
    assert isinstance(state, SampledState)
    assert float(info.train_loss[-1]) < float(info.train_loss[0])
    assert info.val_loss.shape == (4,) and int(info.num_used) == 400

    def mse(s):
        pred = ens.predict(s, test.state, test.action)
        return float(jnp.mean((pred["mean"] - test.next_state) ** 2)), pred

    before, _ = mse(fresh)
    after, pred = mse(state)
    assert after < 0.05 * before
    assert pred["member_mean"].shape == (4, 200, 4)
    assert bool(jnp.all(pred["epistemic_var"] > 0)) and bool(jnp.all(pred["aleatoric_var"] > 0))
    # It is a Model: particles step through its samples.
    model = ensemble_model(ens, "tsinf")
    nxt, _, _ = model.batch_step(state, jax.random.key(2), test.state[:8], test.action[:8])
    assert nxt.shape == (8, 4) and bool(jnp.all(jnp.isfinite(nxt)))
    # A fresh fit key draws fresh samples of the same posterior.
    again, _ = fit(jax.random.key(5), fresh, buf, 15)
    assert not np.allclose(
        again.params["params"]["Dense_0"]["kernel"], state.params["params"]["Dense_0"]["kernel"]
    )


@pytest.mark.parametrize("kind", ["dropout", "bayesian"])
def test_pets_runs_with_a_sampled_model(kind):
    import dataclasses

    from mbrl_jax import envs
    from mbrl_jax.agents import pets
    from tests.agents.test_pets import SMALL

    env, params = envs.make("ContinuousCartPole")
    config = dataclasses.replace(
        SMALL,
        trial_length=10,
        num_epochs=1,
        model=dataclasses.replace(SMALL.model, uncertainty=kind),
    )
    out = jax.eval_shape(pets.make_train(config, env, params), jax.random.key(0))
    assert isinstance(out.ensemble, SampledState)
    assert out.ensemble.params["params"]["Dense_0"]["kernel"].shape[0] == 2
