import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_jax.core.rollout import rollout
from mbrl_jax.core.types import Model, batch_step


def counter_model() -> Model:
    """x' = x + a, reward = x', done when x' >= 5."""

    def step(params, key, x, a):
        nxt = x + a
        return nxt, nxt.astype(jnp.float32) * params, nxt >= 5

    return Model(init=lambda key: jnp.float32(1.0), step=step)


def test_rollout_masks_after_termination_and_discounts():
    model = counter_model()
    start = jnp.array([0, 3])
    out = jax.jit(
        lambda key: rollout(model, lambda k, s, t: jnp.ones_like(s), 2.0, key, start, 4, 0.5)
    )(jax.random.key(0))
    np.testing.assert_array_equal(np.asarray(out.states[:, 0]), [0, 1, 2, 3])
    np.testing.assert_array_equal(np.asarray(out.rewards[:, 1]), [8, 10, 12, 14])
    np.testing.assert_array_equal(np.asarray(out.dones[:, 1]), [False, True, True, True])
    np.testing.assert_array_equal(np.asarray(out.mask[:, 1]), [1, 1, 0, 0])
    np.testing.assert_array_equal(np.asarray(out.mask[:, 0]), [1, 1, 1, 1])
    assert float(out.discounted_return[1]) == pytest.approx(8 + 0.5 * 10)
    assert float(out.discounted_return[0]) == pytest.approx(2 + 0.5 * 4 + 0.25 * 6 + 0.125 * 8)
    np.testing.assert_array_equal(np.asarray(out.final_state), [4, 7])
    np.testing.assert_array_equal(np.asarray(out.final_alive), [1, 0])


def test_rollout_policy_sees_states_and_time_and_does_not_recompile():
    model = counter_model()
    policy = lambda key, s, t: jnp.where(t % 2 == 0, 1, 0) * jnp.ones_like(s)  # noqa: E731
    run = jax.jit(lambda key, start: rollout(model, policy, 1.0, key, start, 6))
    out = run(jax.random.key(0), jnp.zeros(3, jnp.int32))
    np.testing.assert_array_equal(np.asarray(out.actions[:, 0]), [1, 0, 1, 0, 1, 0])
    run(jax.random.key(1), jnp.ones(3, jnp.int32))
    assert run._cache_size() == 1
    short = rollout(
        model, policy, 1.0, jax.random.key(0), jnp.zeros(3, jnp.int32), 2, keep_trajectory=False
    )
    assert short.states is None and short.rewards.shape == (2, 3)


def test_rollout_uses_the_models_batch_step_and_keys_differ_per_item():
    seen = {}

    def fast(params, key, states, actions):
        seen["batched"] = True
        return states + actions, jnp.zeros(states.shape[0]), jnp.zeros(states.shape[0], bool)

    model = Model(init=lambda key: None, step=None, batch_step=fast)
    rollout(model, lambda k, s, t: jnp.ones_like(s), None, jax.random.key(0), jnp.zeros(2), 1)
    assert seen["batched"]

    noisy = Model(
        init=lambda key: None,
        step=lambda p, key, x, a: (x + jax.random.normal(key), jnp.float32(0), jnp.bool_(False)),
    )
    nxt, _, _ = batch_step(noisy)(None, jax.random.key(0), jnp.zeros(4), jnp.zeros(4))
    assert len(set(np.asarray(nxt).tolist())) == 4


def test_rollout_bad_horizon():
    for bad in (0, 2.5, -1):
        with pytest.raises(ValueError, match="horizon"):
            rollout(counter_model(), lambda k, s, t: s, 1.0, jax.random.key(0), jnp.zeros(2), bad)
