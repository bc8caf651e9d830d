import jax
import jax.numpy as jnp
import numpy as np

from mbrl_jax import envs


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
