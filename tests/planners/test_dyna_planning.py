import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_jax import models
from mbrl_jax.core.types import Transition
from mbrl_jax.planners.dyna import (
    dyna_planning,
    q_learning_update,
    sample_planning_pairs,
    visited_init,
    visited_update,
)


def test_q_learning_update_matches_hand_computed_targets():
    q = jnp.array([[0.0, 1.0], [2.0, 4.0], [0.5, 0.0]])
    # r + gamma * max Q(s') = 1 + 0.9 * 4 = 4.6; Q(0, 1) = 1 + 0.5 * (4.6 - 1) = 2.8
    out = q_learning_update(q, Transition(0, 1, 1.0, 1, jnp.bool_(False)), 0.5, 0.9)
    assert float(out[0, 1]) == pytest.approx(2.8)
    assert float(jnp.sum(jnp.abs(out - q))) == pytest.approx(1.8)
    # Terminal: no bootstrap. Q(2, 0) = 0.5 + 0.1 * (1 - 0.5) = 0.55
    out = q_learning_update(q, Transition(2, 0, 1.0, 1, jnp.bool_(True)), 0.1, 0.9)
    assert float(out[2, 0]) == pytest.approx(0.55)


def test_visited_lists_and_uniform_sampling():
    memory = visited_init(10, 4)
    update = jax.jit(visited_update)
    for s, a in [(3, 1), (3, 2), (7, 0), (3, 1), (0, 3)]:
        memory = update(memory, jnp.int32(s), jnp.int32(a))
    assert int(memory.num_pairs) == 4
    assert list(np.asarray(memory.pair_list[:4])) == [13, 14, 28, 3]
    assert int(memory.num_states_visited) == 3
    assert list(np.asarray(memory.state_list[:3])) == [3, 7, 0]
    counters = jnp.arange(8000, dtype=jnp.uint32)
    s, a = sample_planning_pairs(memory, jnp.uint32(99), counters, untried_actions=False)
    flat = np.asarray(s * 4 + a)
    counts = np.array([np.mean(flat == f) for f in (13, 14, 28, 3)])
    np.testing.assert_allclose(counts, 0.25, atol=0.02)
    assert counts.sum() == pytest.approx(1.0)
    s, a = sample_planning_pairs(memory, jnp.uint32(99), counters, untried_actions=True)
    assert set(np.unique(np.asarray(s))) == {0, 3, 7}
    assert set(np.unique(np.asarray(a))) == {0, 1, 2, 3}


def test_every_pair_is_listed_once():
    memory = visited_init(3, 2)
    pairs = [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1), (2, 1)]
    for s, a in pairs:
        memory = visited_update(memory, jnp.int32(s), jnp.int32(a))
    assert int(memory.num_pairs) == 6
    assert sorted(np.asarray(memory.pair_list).tolist()) == list(range(6))


def _chain_transitions():
    # A 4-state chain: action 1 moves right, reaching 3 pays 1 and terminates.
    s = jnp.array([0, 1, 2])
    return Transition(s, jnp.ones(3, jnp.int32), (s == 2).astype(jnp.float32), s + 1, s == 2)


@pytest.mark.parametrize("factory", ["deterministic", "count", "tabular_ensemble"])
@pytest.mark.parametrize("batched", [False, True])
def test_planning_with_any_tabular_model_propagates_value(factory, batched):
    build = {
        "deterministic": models.deterministic_model,
        "count": models.count_model,
        "tabular_ensemble": lambda s, a: models.tabular_ensemble_model(3, s, a),
    }[factory]
    model = build(4, 2)
    data = _chain_transitions()
    params = model.update(model.init(jax.random.key(0)), jax.random.key(1), data)
    # The bootstrap ensemble needs each member to see the data: update a few times.
    for i in range(4):
        params = model.update(params, jax.random.key(2 + i), data)
    memory = visited_init(4, 2)
    for s in range(3):
        memory = visited_update(memory, jnp.int32(s), jnp.int32(1))

    def plan(q, seed):
        return dyna_planning(q, model, params, memory, seed, 200, 0.5, 0.9, batched=batched)

    q = jnp.zeros((4, 2))
    plan = jax.jit(plan)
    for i in range(30):
        q = plan(q, jnp.uint32(i))
    # Value flows back from the goal: Q(2,1) ~ 1, Q(1,1) ~ 0.9, Q(0,1) ~ 0.81.
    np.testing.assert_allclose(np.asarray(q[:3, 1]), [0.81, 0.9, 1.0], atol=0.06)
    assert float(jnp.abs(q[:, 0]).max()) == 0.0  # never-tried actions are never drawn
