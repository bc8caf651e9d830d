import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_jax.core.rollout import rollout
from mbrl_jax.models import mdn_rnn as mdn
from mbrl_jax.models.vae import VAEConfig, kl_to_prior, make_vae

MDN = mdn.MDNRNNConfig(latent_size=3, action_size=2, hidden_size=8, num_mixtures=4)


def test_vae_reconstructs_vectors_after_a_few_hundred_steps():
    # Observations on two very different scales: standardisation keeps the small one.
    key = jax.random.key(0)
    base = jax.random.normal(key, (512, 2))
    obs = jnp.concatenate([3.0 * base, 0.01 * base[:, ::-1]], axis=1)
    vae = make_vae(VAEConfig(obs_shape=(4,), latent_size=4, kl_weight=0.01))
    state = vae.init(jax.random.key(1))
    fit = jax.jit(vae.fit, static_argnums=4)
    state, losses = fit(state, jax.random.key(2), obs, 512, 400)
    assert float(losses[-20:].mean()) < 0.3 * float(losses[:5].mean())
    recon = vae.decode(state, vae.encode(state, obs)[0])
    error = np.abs(np.asarray(recon - obs)) / np.asarray(obs).std(0)
    assert float(error.mean()) < 0.2
    np.testing.assert_allclose(np.asarray(state.scale), np.asarray(obs).std(0), rtol=1e-3)


@pytest.mark.slow  # compiling the conv encoder and decoder takes most of a minute on CPU
def test_vae_images_shapes():
    vae = make_vae(VAEConfig(obs_shape=(64, 64, 3), latent_size=5))
    state = vae.init(jax.random.key(0))
    images = jax.random.uniform(jax.random.key(1), (2, 64, 64, 3))
    mean, logvar = vae.encode(state, images)
    assert mean.shape == logvar.shape == (2, 5)
    recon = vae.decode(state, mean)
    assert recon.shape == (2, 64, 64, 3)
    assert float(recon.min()) >= 0.0 and float(recon.max()) <= 1.0


def test_kl_to_prior_matches_the_closed_form():
    m, lv = np.array([0.5, -1.0]), np.array([0.2, -0.3])
    expected = 0.5 * np.sum(m**2 + np.exp(lv) - 1 - lv)
    np.testing.assert_allclose(float(kl_to_prior(jnp.asarray(m), jnp.asarray(lv))), expected, 1e-5)


def _output(num_mixtures=3, latent=2, seed=0):
    keys = jax.random.split(jax.random.key(seed), 3)
    return mdn.MDNOutput(
        logits=jax.random.normal(keys[0], (num_mixtures,)),
        mean=jax.random.normal(keys[1], (num_mixtures, latent)),
        log_std=0.3 * jax.random.normal(keys[2], (num_mixtures, latent)),
        reward=jnp.float32(0),
        done_logit=jnp.float32(0),
    )


def test_mixture_log_prob_matches_the_hand_computed_density():
    out = _output()
    z = np.array([0.3, -0.7])
    logits, mean, std = (np.asarray(x, np.float64) for x in (out.logits, out.mean, out.log_std))
    std = np.exp(std)
    weights = np.exp(logits) / np.exp(logits).sum()
    density = 0.0
    for k in range(3):
        gauss = np.exp(-0.5 * ((z - mean[k]) / std[k]) ** 2) / (std[k] * math.sqrt(2 * math.pi))
        density += weights[k] * np.prod(gauss)
    got = float(jax.jit(mdn.mixture_log_prob)(out, jnp.asarray(z, jnp.float32)))
    np.testing.assert_allclose(got, math.log(density), rtol=1e-5)


def test_temperature_sharpens_components_and_scales_the_variance():
    out = _output()
    keys = jax.random.split(jax.random.key(3), 4000)
    sample = jax.jit(jax.vmap(mdn.sample_latent, in_axes=(None, 0, None)))
    # Near zero temperature: the most likely component's mean, no noise.
    cold = np.asarray(sample(out, keys, 1e-4))
    best = int(np.argmax(np.asarray(out.logits)))
    np.testing.assert_allclose(
        cold, np.broadcast_to(np.asarray(out.mean[best]), cold.shape), atol=0.1
    )
    # One component: variance tau * std^2.
    single = out._replace(logits=out.logits[:1], mean=out.mean[:1], log_std=out.log_std[:1])
    std2 = np.exp(2 * np.asarray(single.log_std[0]))
    for tau in (0.5, 2.0):
        var = np.asarray(sample(single, keys, tau)).var(0)
        np.testing.assert_allclose(var, tau * std2, rtol=0.15)


def _batch(key, b=4, t=6):
    keys = jax.random.split(key, 4)
    z = jax.random.normal(keys[0], (b, t, 3))
    action = jax.random.randint(keys[1], (b, t), 0, 2)
    next_z = 0.5 * z + 0.3 * action[..., None]
    done = jnp.zeros((b, t), bool).at[:, -1].set(True)
    mask = jnp.ones((b, t)).at[0, 3:].set(0.0)
    return mdn.SequenceBatch(z, action, next_z, jnp.ones((b, t)), done, mask)


def test_masked_steps_do_not_count_and_updates_lower_the_loss():
    model = mdn.mdn_rnn_model(MDN)
    params = model.init(jax.random.key(0))
    batch = _batch(jax.random.key(1))
    loss = jax.jit(lambda p, b: mdn.sequence_loss(MDN, p.params, b)[0])
    changed = batch._replace(next_z=batch.next_z.at[0, 4].set(100.0))
    np.testing.assert_allclose(float(loss(params, batch)), float(loss(params, changed)), rtol=1e-6)
    update = jax.jit(model.update)
    first = float(loss(params, batch))
    for _ in range(60):
        params = update(params, jax.random.key(0), batch)
    assert float(loss(params, batch)) < first - 1.0


def test_dream_rollout_through_core_rollout_does_not_recompile():
    model = mdn.mdn_rnn_model(MDN, tau=1.0)
    params = model.init(jax.random.key(0))
    start = mdn.initial_state(MDN, jnp.zeros((5, 3)))

    def run(params, key):
        policy = lambda k, s, t: (s.z[:, 0] > 0).astype(jnp.int32)  # noqa: E731
        return rollout(model, policy, params, key, start, 7)

    run = jax.jit(run)
    out = run(params, jax.random.key(1))
    run(params, jax.random.key(2))
    assert run._cache_size() == 1
    assert out.rewards.shape == (7, 5) and out.states.z.shape == (7, 5, 3)
    assert out.final_state.h.shape == (5, 8) and out.actions.shape == (7, 5)
    # Dreams end where the termination head passes 1/2 and stay ended.
    mask = np.asarray(out.mask)
    assert np.all(mask[0] == 1.0) and np.all(np.diff(mask, axis=0) <= 0)
    next_state, reward, done = jax.jit(model.step)(
        params, jax.random.key(3), jax.tree.map(lambda x: x[0], start), jnp.int32(1)
    )
    assert next_state.z.shape == (3,) and reward.shape == () and 0.0 <= float(done) <= 1.0


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: VAEConfig(obs_shape=(32, 32, 3)), "VAEConfig.obs_shape"),
        (lambda: VAEConfig(latent_size=0), "VAEConfig.latent_size"),
        (lambda: VAEConfig(kl_weight=float("nan")), "VAEConfig.kl_weight"),
        (lambda: mdn.MDNRNNConfig(latent_size=3, action_size=2, hidden_size=0), "hidden_size"),
        (lambda: mdn.MDNRNNConfig(latent_size=3, action_size=2, learning_rate=0.0), "rate"),
    ],
)
def test_configs_reject_bad_values(make, field):
    with pytest.raises(ValueError, match=field):
        make()
