import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_jax.core.returns import (
    completed_returns,
    discounted_returns,
    episode_lengths,
    episode_returns,
    first_step_where,
    lambda_returns,
    n_step_bootstrap,
    n_step_targets,
    updates_until_path_within,
)


def _reference_n_step(rewards, term, trunc, values, last, trunc_values, g, n):
    t_len = len(rewards)
    out = []
    for t in range(t_len):
        total, scale = 0.0, 1.0
        for j in range(t, min(t + n, t_len)):
            total += scale * rewards[j]
            scale *= g
            if term[j]:
                scale = 0.0
                break
            if trunc[j]:
                total += scale * trunc_values[j]
                scale = 0.0
                break
        else:
            j = min(t + n, t_len)
            total += scale * (values[j] if j < t_len else last)
            out.append(total)
            continue
        out.append(total)
    return np.array(out)


def test_n_step_targets_match_a_python_reference():
    rng = np.random.default_rng(0)
    t_len = 23
    rewards = rng.normal(size=t_len).astype(np.float32)
    term = rng.random(t_len) < 0.1
    trunc = (rng.random(t_len) < 0.1) & ~term
    values = rng.normal(size=t_len).astype(np.float32)
    trunc_values = rng.normal(size=t_len).astype(np.float32)
    for n in (1, 3, 50):
        got = n_step_targets(
            jnp.asarray(rewards),
            jnp.asarray(term),
            jnp.asarray(trunc),
            jnp.asarray(values),
            jnp.float32(0.7),
            jnp.asarray(trunc_values),
            0.9,
            n,
        )
        want = _reference_n_step(rewards, term, trunc, values, 0.7, trunc_values, 0.9, n)
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)
        # The value-free parts give the same targets with the value of each
        # step's final observation (the next state's, or the truncation's).
        final_values = np.where(trunc, trunc_values, np.append(values[1:], 0.7))
        partial, boot_discount, index = n_step_bootstrap(
            jnp.asarray(rewards)[:, None],
            jnp.asarray(term)[:, None],
            jnp.asarray(trunc)[:, None],
            0.9,
            n,
        )
        rebuilt = partial[:, 0] + boot_discount[:, 0] * final_values[np.asarray(index[:, 0])]
        np.testing.assert_allclose(np.asarray(rebuilt), want, rtol=1e-5, atol=1e-5)
    returns, mean, running = completed_returns(
        jnp.ones((4, 2)), jnp.array([[0, 0], [1, 0], [0, 0], [0, 1]], bool), jnp.array([5.0, 0.0])
    )
    assert float(mean) == pytest.approx((7.0 + 4.0) / 2)
    np.testing.assert_allclose(np.asarray(running), [2.0, 0.0])


def test_discounted_and_lambda_returns_match_python_references():
    rng = np.random.default_rng(1)
    t_len, g, lam = 17, 0.9, 0.8
    rewards = rng.normal(size=(t_len, 3)).astype(np.float32)
    cont = (rng.random((t_len, 3)) > 0.15).astype(np.float32)
    values = rng.normal(size=(t_len, 3)).astype(np.float32)
    boot = rng.normal(size=3).astype(np.float32)
    disc = g * cont
    want_g, want_l = np.zeros_like(rewards), np.zeros_like(rewards)
    next_g, next_l = boot.copy(), boot.copy()
    for t in reversed(range(t_len)):
        next_g = rewards[t] + disc[t] * next_g
        next_l = rewards[t] + disc[t] * ((1 - lam) * values[t] + lam * next_l)
        want_g[t], want_l[t] = next_g, next_l
    got_g = jax.jit(discounted_returns)(rewards, disc, boot)
    got_l = lambda_returns(jnp.asarray(rewards), jnp.asarray(disc), jnp.asarray(values), boot, lam)
    np.testing.assert_allclose(np.asarray(got_g), want_g, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(got_l), want_l, rtol=1e-5, atol=1e-5)
    # lambda = 1 is the discounted return; lambda = 0 the one-step TD target.
    one = lambda_returns(rewards, disc, values, boot, 1.0)
    np.testing.assert_allclose(np.asarray(one), want_g, rtol=1e-5, atol=1e-5)
    zero = lambda_returns(rewards, disc, values, boot, 0.0)
    np.testing.assert_allclose(np.asarray(zero), rewards + disc * values, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="lambda_"):
        lambda_returns(rewards, disc, values, boot, 1.5)


def test_episode_helpers_by_hand():
    done = jnp.array([0, 0, 1, 0, 1, 0, 0], bool)
    reward = jnp.array([0, 0, 1, 0, 2, 5, 0], jnp.float32)
    lengths, valid = episode_lengths(done, 4)
    assert list(np.asarray(lengths)) == [3, 2, 0, 0] and list(np.asarray(valid)) == [1, 1, 0, 0]
    returns, _ = episode_returns(reward, done, 4)
    assert list(np.asarray(returns)) == [1, 2, 0, 0]
    assert int(first_step_where(jnp.array([0, 0, 1, 1], bool))) == 2
    assert int(first_step_where(jnp.zeros(4, bool))) == 4


def test_updates_until_path_within_by_hand():
    paths = jnp.array([[-1, 20, 15, 14], [-1, -1, -1, 30]])
    q_updates = jnp.ones((2, 8), jnp.int32) * jnp.array([[1], [2]])
    out = updates_until_path_within(paths, q_updates, interval=2, max_length=16)
    # Seed 0 first gets within 16 at the third evaluation (after 6 steps of 1 update).
    assert float(out[0]) == 6.0 and np.isinf(float(out[1]))
