import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_jax import envs
from mbrl_jax.agents import policy_through_model as ptm
from mbrl_jax.core.types import Model
from mbrl_jax.models import EnsembleConfig, count_model
from mbrl_jax.planners import policy_search

TINY_MODEL = EnsembleConfig(
    ensemble_size=2, num_elites=2, hidden_size=16, num_layers=2, batch_size=32
)
SMALL = ptm.Config(
    num_trials=3,
    trial_length=30,
    num_epochs=2,
    model=TINY_MODEL,
    hidden_sizes=(8,),
    horizon=5,
    num_particles=4,
    policy_updates=3,
    population=4,
)


# A linear model with a quadratic cost: s' = A s + B a, r = -(|s|^2 + 0.1 |a|^2).
A = jnp.array([[1.0, 0.1], [0.0, 1.0]])
B = jnp.array([[0.0], [0.1]])


def _linear_step(params, key, state, action):
    del key
    next_state = state @ params["A"].T + action @ params["B"].T
    reward = -(jnp.sum(state**2, -1) + 0.1 * jnp.sum(action**2, -1))
    return next_state, reward, jnp.zeros(state.shape[:-1], bool)


LINEAR = Model(init=lambda key: {"A": A, "B": B}, step=_linear_step, batch_step=_linear_step)
POLICY = policy_search.TanhPolicy((4,), (-2.0,), (2.0,))


def _objective(horizon=6):
    return policy_search.model_return_fn(
        LINEAR, POLICY.apply, horizon, 0.95, jnp.zeros(2), jnp.zeros(1)
    )


def _starts(key, shape):
    return jax.random.uniform(key, shape, minval=-1.0, maxval=1.0)


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("num_trials", 0, "num_trials"),
        ("random_trials", 3, "random_trials"),
        ("horizon", 0, "horizon"),
        ("horizon", 2.5, "horizon"),
        ("discount", 0.0, "discount"),
        ("discount", math.nan, "discount"),
        ("learning_rate", math.inf, "learning_rate"),
        ("max_grad_norm", -1.0, "max_grad_norm"),
        ("es_sigma", 0.0, "es_sigma"),
        ("exploration_noise", 1.5, "exploration_noise"),
        ("population", 1, "population"),
        ("optimizer", "adam", "optimizer"),
        ("start_states", "anywhere", "start_states"),
        ("propagation", "mean", "propagation"),
        ("hidden_sizes", (8, 0), "hidden_sizes"),
        ("hidden_sizes", [8], "hidden_sizes"),
        ("num_particles", 5, "num_particles"),  # not a multiple of 2 members
        ("model", "big", "model"),
    ],
)
def test_bad_config_values_raise_one_line_errors_naming_the_field(field, value, match):
    with pytest.raises(ValueError, match=match) as info:
        dataclasses.replace(SMALL, **{field: value})
    assert "\n" not in str(info.value)


def test_open_es_needs_an_even_population():
    with pytest.raises(ValueError, match="population"):
        dataclasses.replace(SMALL, optimizer="open_es", population=5)
    dataclasses.replace(SMALL, optimizer="cma_es", population=5)


def test_discrete_actions_and_tabular_models_are_rejected():
    env, params = envs.make("CartPole-v1")
    with pytest.raises(ValueError, match="continuous"):
        ptm.make_train(SMALL, env, params)
    with pytest.raises(ValueError, match="not differentiable"):
        policy_search.model_return_fn(count_model(4, 2), POLICY.apply, 3, 1.0, jnp.zeros(2), 0.0)
    with pytest.raises(ValueError, match="not differentiable"):
        policy_search.model_return_fn(
            count_model(4, 2), POLICY.apply, 3, 1.0, jnp.zeros(2), jnp.zeros(1)
        )


def test_model_return_gradient_matches_finite_differences():
    # One compiled function for the values and the gradient: the check's exact
    # reference is the same objective evaluated at nearby parameters.
    value_and_grad = jax.jit(jax.value_and_grad(_objective()))
    key = jax.random.key(0)
    params = POLICY.init(key, jnp.zeros((1, 2)))
    # A larger last layer than the default start, so the policy's output depends on the state.
    params = jax.tree.map(lambda p: 5.0 * p, params)
    start = _starts(jax.random.key(1), (8, 2))
    _, grads = value_and_grad(params, LINEAR.init(key), key, start)
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    flat_grad = jax.flatten_util.ravel_pytree(grads)[0]
    assert np.all(np.isfinite(flat_grad)) and float(jnp.linalg.norm(flat_grad)) > 1e-3
    eps = 1e-2
    for i in range(4):
        v = jax.random.normal(jax.random.key(10 + i), flat.shape)
        v = v / jnp.linalg.norm(v)
        plus = value_and_grad(unravel(flat + eps * v), LINEAR.init(key), key, start)[0]
        minus = value_and_grad(unravel(flat - eps * v), LINEAR.init(key), key, start)[0]
        fd = float(plus - minus) / (2 * eps)
        np.testing.assert_allclose(float(flat_grad @ v), fd, rtol=2e-2, atol=1e-3)


# The gradient optimiser runs in the whole-run test below and the slow test.
@pytest.mark.parametrize("kind", ["cma_es", "open_es"])
def test_each_es_optimiser_improves_the_model_return(kind):
    objective = _objective()
    params = POLICY.init(jax.random.key(0), jnp.zeros((1, 2)))
    updates = 30
    optimise = policy_search.make_policy_optimiser(
        kind, objective, params, updates, learning_rate=3e-2, population=16, es_sigma=0.3
    )
    starts = _starts(jax.random.key(1), (updates, 8, 2))
    new_params, loss = jax.jit(optimise)(jax.random.key(2), params, LINEAR.init(None), starts)
    assert loss.shape == (updates,) and np.all(np.isfinite(np.asarray(loss)))
    test = _starts(jax.random.key(3), (64, 2))
    before = objective(params, LINEAR.init(None), jax.random.key(4), test)
    after = objective(new_params, LINEAR.init(None), jax.random.key(4), test)
    assert float(after) > float(before) + 0.05 * abs(float(before))


def test_train_vmaps_over_seeds_and_does_not_recompile():
    env, params = envs.make("Pendulum-v1")
    train = jax.jit(jax.vmap(ptm.make_train(SMALL, env, params)))
    out = train(jax.random.split(jax.random.key(0), 2))
    out2 = train(jax.random.split(jax.random.key(1), 2))
    assert train._cache_size() == 1
    for leaf in jax.tree.leaves(out) + jax.tree.leaves(out2):
        assert np.all(np.isfinite(np.asarray(leaf)))
    assert out.trial_returns.shape == (2, 3) and out.policy_loss.shape == (2, 3, 3)
    m = out.metrics
    assert m.reward.shape == m.done.shape == m.active.shape == (2, 90)
    assert np.asarray(m.done).sum(1).tolist() == [3, 3]  # one 30-step episode per trial
    np.testing.assert_allclose(
        np.asarray(out.step_rewards.sum(-1)), np.asarray(out.trial_returns), rtol=1e-5
    )
    predicted = np.asarray(out.predicted_return)
    assert np.all(predicted[:, 0] == 0) and np.all(predicted[:, 1:] < 0)  # Pendulum's cost
    assert not np.allclose(np.asarray(m.reward[0]), np.asarray(m.reward[1]))
    # Actions stay in [-2, 2]: the reward's torque cost is bounded.
    assert float(np.asarray(m.reward).min()) >= -(math.pi**2 + 0.1 * 64 + 0.001 * 4) - 1e-4


@pytest.mark.parametrize("optimizer", ["cma_es", "open_es"])
def test_es_modes_build_and_trace_with_the_same_outputs(optimizer):
    env, params = envs.make("Pendulum-v1")
    config = dataclasses.replace(SMALL, optimizer=optimizer)
    shapes = jax.eval_shape(ptm.make_train(config, env, params), jax.random.key(0))
    assert shapes.trial_returns.shape == (3,) and shapes.policy_loss.shape == (3, 3)
    assert shapes.metrics.reward.shape == (90,)


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["gradient"])
def test_swings_the_pendulum_up_within_ten_episodes(optimizer):
    env, params = envs.make("Pendulum-v1")
    config = dataclasses.replace(ptm.Config(), optimizer=optimizer)
    train = jax.jit(jax.vmap(ptm.make_train(config, env, params)))
    returns = np.asarray(train(jax.random.split(jax.random.key(0), 2)).trial_returns)
    assert returns[:, -1].mean() >= -300.0
    assert returns[:, 0].mean() < -700.0  # random actions do not swing it up
