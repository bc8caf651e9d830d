import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_jax import envs
from mbrl_jax.replay import buffer_add, buffer_init, buffer_sample


def test_buffer_add_mask_wraparound_and_sample():
    buf = buffer_init({"x": jnp.zeros(2), "i": jnp.int32(0)}, capacity=5)
    batch = {"x": jnp.arange(8.0).reshape(4, 2), "i": jnp.arange(4)}
    buf = jax.jit(buffer_add)(buf, batch, jnp.array([True, False, True, True]))
    assert int(buf.size) == 3 and int(buf.position) == 3
    assert list(np.asarray(buf.data["i"][:3])) == [0, 2, 3]
    buf = buffer_add(buf, {"x": jnp.zeros((4, 2)), "i": jnp.arange(10, 14)})
    assert int(buf.size) == 5 and int(buf.position) == 2
    # Slots 3, 4, 0, 1 take 10, 11, 12, 13; slot 2 keeps the oldest survivor.
    assert list(np.asarray(buf.data["i"])) == [12, 13, 3, 10, 11]
    sample = buffer_sample(buf, jax.random.key(0), 1000)
    assert set(np.unique(np.asarray(sample["i"]))) <= {3, 10, 11, 12, 13}
    with pytest.raises(ValueError, match="capacity"):
        buffer_init({"x": jnp.zeros(1)}, 0)


def test_continuous_cartpole_matches_gymnax_physics():
    cont, cont_params = envs.make("ContinuousCartPole")
    disc, disc_params = envs.make("CartPole-v1")
    key = jax.random.key(3)
    _, c_state = cont.reset(key, cont_params)
    _, d_state = disc.reset(key, disc_params)
    rng = np.random.default_rng(0)
    for t in range(30):
        a = int(rng.integers(2))
        c_obs, c_state, c_r, c_term, *_ = cont.step_env(
            key, c_state, jnp.array([2.0 * a - 1]), cont_params
        )
        d_obs, d_state, d_r, d_term, _ = disc.step_env(key, d_state, a, disc_params)
        np.testing.assert_allclose(np.asarray(c_obs), np.asarray(d_obs), rtol=1e-5, atol=1e-6)
        assert bool(c_term) == bool(d_term), t
        if bool(c_term):
            break


def test_continuous_cartpole_truncates_at_200():
    env, params = envs.make("ContinuousCartPole")
    obs, state = env.reset(jax.random.key(0), params)

    # Hold the pole up with a simple PD controller for 200 steps.
    def body(carry, k):
        obs, state = carry
        action = jnp.clip(10.0 * obs[2] + 2.0 * obs[3] + 0.1 * obs[1] + 0.05 * obs[0], -1, 1)
        obs, state, r, term, trunc, _ = env.step(k, state, action[None], params)
        return (obs, state), (r, term, trunc)

    _, (r, term, trunc) = jax.lax.scan(body, (obs, state), jax.random.split(jax.random.key(1), 200))
    assert not bool(term.any()) and bool(trunc[-1]) and float(r.sum()) == 200.0
