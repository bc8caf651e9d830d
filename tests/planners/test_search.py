import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_jax.core.types import Model
from mbrl_jax.planners.search import SearchConfig, make_search, rollout_evaluator


def chain_model() -> Model:
    """A 1-D chain 0..5: action 1 moves right, 0 left; reaching 5 pays 1 and ends."""

    def step(params, key, state, action):
        nxt = jnp.clip(state + 2 * action - 1, 0, 5)
        return nxt, (nxt == 5).astype(jnp.float32), nxt == 5

    return Model(init=lambda key: None, step=step)


@pytest.mark.parametrize("policy", ["gumbel", "muzero", "ucb1"])
def test_search_finds_the_rewarding_action_on_a_chain(policy):
    evaluate = rollout_evaluator(chain_model(), 2, num_rollouts=32, depth=10, discount=0.9)
    search = jax.jit(
        make_search(
            SearchConfig(num_simulations=64, policy=policy, discount=0.9, temperature=0.1),
            chain_model(),
            evaluate,
            2,
        )
    )
    result = search(None, None, jax.random.key(0), jnp.array([3, 4, 1, 0]))
    assert result.action.shape == (4,) and result.action.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(result.action), [1, 1, 1, 1])
    np.testing.assert_allclose(np.asarray(result.policy.sum(-1)), 1.0, atol=1e-5)
    assert result.visit_counts.shape == (4, 2)
    # From state 4 the right move pays 1 at once: Q(4, right) = 1.
    assert abs(float(result.q_values[1, 1]) - 1.0) < 1e-5
    # Values fall with distance from the goal.
    assert float(result.value[1]) > float(result.value[0]) > float(result.value[2])
    search(None, None, jax.random.key(1), jnp.array([0, 1, 2, 3]))
    assert search._cache_size() == 1


def test_terminal_transitions_stop_the_search():
    # Both actions end the episode; the right one pays 1. Nothing beyond counts.
    model = Model(
        init=lambda key: None,
        step=lambda params, key, state, action: (
            state,
            action.astype(jnp.float32),
            jnp.bool_(True),
        ),
    )

    def evaluate(params, key, states):
        return jnp.zeros((states.shape[0], 2)), jnp.full(states.shape[0], 100.0)

    search = make_search(SearchConfig(num_simulations=8, policy="ucb1"), model, evaluate, 2)
    result = search(None, None, jax.random.key(0), jnp.zeros(1, jnp.int32))
    np.testing.assert_allclose(np.asarray(result.q_values[0]), [0.0, 1.0], atol=1e-6)


def test_invalid_actions_are_never_chosen():
    def mask(params, state):
        return jnp.array([True, False])  # moving right is forbidden

    evaluate = rollout_evaluator(chain_model(), 2, num_rollouts=4, depth=5)
    for policy in ("gumbel", "muzero", "ucb1"):
        search = make_search(
            SearchConfig(num_simulations=16, policy=policy), chain_model(), evaluate, 2, mask
        )
        result = search(None, None, jax.random.key(0), jnp.array([4, 3]))
        np.testing.assert_array_equal(np.asarray(result.action), [0, 0])


def test_search_bad_input():
    with pytest.raises(ValueError, match="num_simulations"):
        SearchConfig(num_simulations=0)
    with pytest.raises(ValueError, match="policy"):
        SearchConfig(policy="alphago")

    def wrong_value(params, key, states):
        return jnp.zeros((states.shape[0], 2)), jnp.zeros((states.shape[0], 1))

    search = make_search(SearchConfig(num_simulations=4), chain_model(), wrong_value, 2)
    with pytest.raises(ValueError, match="value"):
        search(None, None, jax.random.key(0), jnp.array([0, 1]))

    # A model with 3 actions for a 2-action environment.
    def three_actions(params, key, states):
        return jnp.zeros((states.shape[0], 3)), jnp.zeros(states.shape[0])

    search = make_search(SearchConfig(num_simulations=4), chain_model(), three_actions, 2)
    with pytest.raises(ValueError, match="action count"):
        search(None, None, jax.random.key(0), jnp.array([0, 1]))
    for field, value in [
        ("gumbel_scale", -1.0),
        ("pb_c_init", float("nan")),
        ("discount", float("inf")),
        ("num_simulations", 1.5),
    ]:
        with pytest.raises(ValueError, match=f"SearchConfig.{field}"):
            SearchConfig(**{field: value})


def test_search_keeps_model_and_evaluator_params_apart():
    # The model's params shift the chain; the evaluator's params are its values.
    def step(shift, key, state, action):
        nxt = jnp.clip(state + 2 * action - 1 + shift, 0, 5)
        return nxt, (nxt == 5).astype(jnp.float32), nxt == 5

    def evaluate(value, key, states):
        return jnp.zeros((states.shape[0], 2)), jnp.full(states.shape[0], value)

    model = Model(init=lambda key: jnp.int32(0), step=step)
    search = jax.jit(
        make_search(SearchConfig(num_simulations=8, policy="ucb1"), model, evaluate, 2)
    )
    result = search(jnp.int32(0), jnp.float32(0.25), jax.random.key(0), jnp.array([2]))
    assert result.q_values.shape == (1, 2)
    search(jnp.int32(1), jnp.float32(0.5), jax.random.key(0), jnp.array([2]))
    assert search._cache_size() == 1
