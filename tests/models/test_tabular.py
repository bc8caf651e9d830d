import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_jax import envs, models, planners
from mbrl_jax.core.types import Transition
from mbrl_jax.experiments.collect import random_transitions


@pytest.fixture(scope="module")
def slippery():
    env, params = envs.make("GridWorld-5x5", slip_prob=0.3, max_steps_in_episode=30)
    return env, params, envs.to_tabular(env, params)


def test_count_model_converges_to_true_transitions(slippery):
    env, params, true_mdp = slippery
    errors = []
    for n in (500, 5_000, 50_000):
        data = jax.jit(random_transitions, static_argnums=(1, 3))(jax.random.key(0), env, params, n)
        model = models.count_model_update(models.count_model_init(25, 4), data)
        mdp = models.count_model_mdp(model)
        visited = (
            np.asarray(models.visit_counts(model) > 0) & ~np.asarray(true_mdp.terminal)[:, None]
        )
        err = np.abs(np.asarray(mdp.transition) - np.asarray(true_mdp.transition)).sum(-1)
        errors.append(float(err[visited].mean()))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.05


def test_count_model_batch_equals_sequential_and_sampling():
    s = jnp.array([0, 0, 0, 1])
    a = jnp.array([1, 1, 1, 2])
    s2 = jnp.array([2, 2, 3, 1])
    r = jnp.array([1.0, 0.0, 0.5, 2.0])
    d = jnp.array([False, False, True, False])
    batch = models.count_model_update(models.count_model_init(4, 3), Transition(s, a, r, s2, d))
    seq = models.count_model_init(4, 3)
    for i in range(4):
        seq = models.count_model_update(seq, Transition(s[i], a[i], r[i], s2[i], d[i]))
    for x, y in zip(jax.tree.leaves(batch), jax.tree.leaves(seq), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    mdp = models.count_model_mdp(batch)
    np.testing.assert_allclose(np.asarray(mdp.transition[0, 1]), [0, 0, 2 / 3, 1 / 3])
    assert float(mdp.reward[0, 1]) == pytest.approx(0.5)
    # Unvisited pairs: self-loop, zero reward; with a prior they blend towards uniform.
    np.testing.assert_allclose(np.asarray(mdp.transition[3, 0]), [0, 0, 0, 1])
    prior = models.count_model_mdp(batch, prior_count=4.0)
    np.testing.assert_allclose(np.asarray(prior.transition[3, 0]), [0.25] * 4)
    np.testing.assert_allclose(np.asarray(prior.transition[0, 1]), [1 / 7, 1 / 7, 3 / 7, 2 / 7])
    assert bool(mdp.terminal[3]) and not bool(mdp.terminal[2])
    keys = jax.random.split(jax.random.key(0), 4000)
    nxt, rew, done = jax.vmap(models.count_model_step, in_axes=(None, 0, None, None))(
        batch, keys, 0, 1
    )
    assert float(jnp.mean(nxt == 2)) == pytest.approx(2 / 3, abs=0.03)
    np.testing.assert_array_equal(np.asarray(done), np.asarray(nxt == 3))
    assert float(rew[0]) == pytest.approx(0.5)
    unseen = models.count_model_step(batch, keys[0], 2, 0)
    assert int(unseen[0]) == 2 and float(unseen[1]) == 0.0


def test_deterministic_model_keeps_the_last_outcome_and_exports_its_mdp():
    model = models.deterministic_model_init(10, 4)
    pairs = [(3, 1), (3, 2), (7, 0), (3, 1), (0, 3)]
    update = jax.jit(models.deterministic_model_update)
    for i, (s, a) in enumerate(pairs):
        model = update(
            model,
            Transition(
                jnp.int32(s),
                jnp.int32(a),
                jnp.float32(i),
                jnp.int32((s + 1) % 10),
                jnp.bool_(s == 7),
            ),
        )
    assert float(model.reward[3, 1]) == 3.0  # last seen wins
    nxt, rew, done = models.deterministic_model_step(model, jax.random.key(0), 7, 0)
    assert (int(nxt), float(rew), bool(done)) == (8, 2.0, True)
    unseen = models.deterministic_model_step(model, jax.random.key(0), 5, 2)
    assert (int(unseen[0]), float(unseen[1]), bool(unseen[2])) == (5, 0.0, False)
    mdp = models.deterministic_model_mdp(model)
    assert mdp.transition.shape == (10, 4, 10)
    np.testing.assert_allclose(np.asarray(mdp.transition.sum(-1)), 1.0)
    assert float(mdp.transition[3, 1, 4]) == 1.0 and bool(mdp.terminal[8])


def test_tabular_ensemble_model_steps_through_a_member():
    model = models.tabular_ensemble_model(4, 3, 2)
    params = model.init(jax.random.key(0))
    data = Transition(
        jnp.array([0, 0, 1]),
        jnp.array([1, 1, 0]),
        jnp.array([1.0, 1.0, 0.5]),
        jnp.array([1, 1, 2]),
        jnp.array([False, False, True]),
    )
    params = jax.jit(model.update)(params, jax.random.key(1), data)
    keys = jax.random.split(jax.random.key(2), 400)
    nxt, rew, done = jax.vmap(model.step, in_axes=(None, 0, None, None))(params, keys, 0, 1)
    # A member that drew no copy of (0, 1) self-loops with reward 0; the others go to 1.
    assert set(np.unique(np.asarray(nxt)).tolist()) <= {0, 1}
    assert 0.3 < float(np.mean(np.asarray(nxt) == 1)) <= 1.0
    np.testing.assert_allclose(np.asarray(rew)[np.asarray(nxt) == 1], 1.0)


def test_ensemble_bounds_ordered(slippery):
    env, params, _ = slippery
    data = random_transitions(jax.random.key(1), env, params, 400)
    ensemble = models.ensemble_init(5, 25, 4)
    ensemble = jax.jit(models.ensemble_update)(ensemble, jax.random.key(2), data)
    stats = models.ensemble_stats(ensemble)
    assert stats["transition_mean"].shape == (25, 4, 25)
    assert float(stats["transition_std"].max()) > 0.0
    mdps = models.ensemble_mdps(ensemble).replace(
        start=jnp.zeros(5, jnp.int32),
        terminal=jnp.broadcast_to(envs.to_tabular(env, params).terminal, (5, 25)),
    )
    pess = planners.pessimistic_value_iteration(mdps, 0.9, 1.0)
    mean = planners.pessimistic_value_iteration(mdps, 0.9, 0.0)
    opt = planners.optimistic_value_iteration(mdps, 0.9, 1.0)
    assert np.all(np.asarray(pess.values) <= np.asarray(mean.values) + 1e-6)
    assert np.all(np.asarray(mean.values) <= np.asarray(opt.values) + 1e-6)
    assert float(jnp.max(opt.values - pess.values)) > 0.01
    with pytest.raises(ValueError, match="beta"):
        planners.pessimistic_value_iteration(mdps, 0.9, -1.0)
    with pytest.raises(ValueError, match="E, S, A"):
        planners.robust_value_iteration(jax.tree.map(lambda x: x[0], mdps), 0.9, 1.0)


def test_model_bundles_share_the_step_interface():
    for make in (models.count_model, models.deterministic_model):
        model = make(5, 2)
        params = model.init(jax.random.key(0))
        params = model.update(
            params,
            jax.random.key(1),
            Transition(jnp.int32(1), jnp.int32(0), jnp.float32(1.0), jnp.int32(2), jnp.bool_(True)),
        )
        next_state, reward, done = jax.jit(model.step)(params, jax.random.key(2), 1, 0)
        assert (int(next_state), float(reward), bool(done)) == (2, 1.0, True)


def test_bad_model_sizes():
    with pytest.raises(ValueError, match="num_states"):
        models.count_model_init(0, 4)
    with pytest.raises(ValueError, match="num_members"):
        models.ensemble_init(1, 4, 4)
