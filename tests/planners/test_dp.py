import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_jax import envs, planners
from mbrl_jax.core.mdp import TabularMDP


@pytest.fixture(scope="module")
def dyna():
    env, params = envs.make("DynaMaze")
    return env, params, envs.to_tabular(env, params)


def python_value_iteration(mdp, discount, sweeps=2000):
    """Plain NumPy reference: synchronous Bellman optimality backups."""
    p, r, term = (
        np.asarray(x, dtype=np.float64) for x in (mdp.transition, mdp.reward, mdp.terminal)
    )
    v = np.zeros(p.shape[0])
    for _ in range(sweeps):
        v = np.where(term > 0, 0.0, (r + discount * p @ v).max(axis=1))
    return v


def test_value_iteration_dyna_maze_14_steps(dyna):
    _, _, mdp = dyna
    result = jax.jit(planners.value_iteration)(mdp, 0.95)
    assert int(planners.greedy_path_length(mdp, result.policy)) == 14
    # Reward 1 at the goal after 14 steps: the start's value is 0.95 ** 13.
    assert float(result.values[int(mdp.start)]) == pytest.approx(0.95**13, rel=1e-5)
    np.testing.assert_allclose(
        np.asarray(result.values), python_value_iteration(mdp, 0.95), atol=1e-5
    )


def test_policy_iteration_agrees_with_value_iteration(dyna):
    _, _, mdp = dyna
    vi = planners.value_iteration(mdp, 0.95)
    for exact in (True, False):
        pi = jax.jit(planners.policy_iteration, static_argnames="exact")(mdp, 0.95, exact=exact)
        np.testing.assert_allclose(np.asarray(pi.values), np.asarray(vi.values), atol=1e-5)
        assert int(planners.greedy_path_length(mdp, pi.policy)) == 14


def test_stochastic_maze_against_numpy_reference():
    env, params = envs.make("GridWorld-5x5", slip_prob=0.3)
    mdp = envs.to_tabular(env, params)
    vi = planners.value_iteration(mdp, 0.9, tolerance=1e-8)
    np.testing.assert_allclose(np.asarray(vi.values), python_value_iteration(mdp, 0.9), atol=1e-5)
    v_exact = planners.policy_evaluation_exact(mdp, vi.policy, 0.9)
    v_iter = planners.policy_evaluation(mdp, vi.policy, 0.9, tolerance=1e-8)
    np.testing.assert_allclose(np.asarray(v_exact), np.asarray(vi.values), atol=1e-5)
    np.testing.assert_allclose(np.asarray(v_iter), np.asarray(v_exact), atol=1e-5)
    q = planners.q_from_v(mdp, vi.values, 0.9)
    np.testing.assert_allclose(np.asarray(q), np.asarray(vi.q_values), atol=1e-6)


def test_sparse_equals_dense():
    env, params = envs.make("BlockingMaze", slip_prob=0.1)
    dense = envs.to_tabular(env, params, phase=1)
    sparse = envs.to_tabular(env, params, phase=1, sparse=True)
    a = planners.value_iteration(dense, 0.95)
    b = planners.value_iteration(sparse, 0.95)
    np.testing.assert_allclose(np.asarray(a.values), np.asarray(b.values), atol=1e-6)


def test_vmap_over_discounts_and_mdps(dyna):
    env, params, mdp = dyna
    discounts = jnp.array([0.5, 0.9, 0.95])
    batch = jax.jit(jax.vmap(planners.value_iteration, in_axes=(None, 0)))(mdp, discounts)
    for i, d in enumerate([0.5, 0.9, 0.95]):
        single = planners.value_iteration(mdp, d)
        np.testing.assert_allclose(
            np.asarray(batch.values[i]), np.asarray(single.values), atol=1e-6
        )
    params_b = jax.tree.map(lambda x: jnp.stack([x, x]), params).replace(
        start=jnp.array([18, 0], jnp.int32)
    )
    mdps = jax.vmap(lambda p: envs.to_tabular(env, p))(params_b)
    results = jax.vmap(planners.value_iteration, in_axes=(0, None))(mdps, 0.95)
    lengths = jax.vmap(planners.greedy_path_length)(mdps, results.policy)
    # From (0, 0) the goal is 8 + 2 + ... : the shortest route goes round the wall at column 7.
    assert list(np.asarray(lengths)) == [14, int(python_path_length(params, 0))]


def python_path_length(params, start):
    """Breadth-first search on the phase-0 walls (plain Python)."""
    walls = np.asarray(params.walls[0])
    h, w = walls.shape
    goal = divmod(int(params.goal), w)
    frontier, seen, dist = [divmod(start, w)], {divmod(start, w)}, 0
    while frontier:
        if goal in frontier:
            return dist
        nxt = []
        for r, c in frontier:
            for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                rr, cc = r + dr, c + dc
                if 0 <= rr < h and 0 <= cc < w and not walls[rr, cc] and (rr, cc) not in seen:
                    seen.add((rr, cc))
                    nxt.append((rr, cc))
        frontier, dist = nxt, dist + 1
    return -1


def test_value_iteration_iteration_cap(dyna):
    _, _, mdp = dyna
    capped = planners.value_iteration(mdp, 0.95, max_iterations=3)
    assert int(capped.iterations) == 3 and float(capped.residual) > 1e-6


@pytest.mark.parametrize("discount", [1.0, -0.1, 1.5])
def test_bad_discount(dyna, discount):
    _, _, mdp = dyna
    with pytest.raises(ValueError, match="discount"):
        planners.value_iteration(mdp, discount)
    with pytest.raises(ValueError, match="discount"):
        planners.policy_iteration(mdp, discount)


def test_mismatched_shapes(dyna):
    _, _, mdp = dyna
    bad = TabularMDP(
        transition=mdp.transition[:, :3], reward=mdp.reward, terminal=mdp.terminal, start=mdp.start
    )
    with pytest.raises(ValueError, match="transition"):
        planners.value_iteration(bad, 0.9)
    bad = mdp.replace(terminal=mdp.terminal[:10])
    with pytest.raises(ValueError, match="terminal"):
        planners.value_iteration(bad, 0.9)
    with pytest.raises(ValueError, match="policy"):
        planners.policy_evaluation_exact(mdp, jnp.zeros(3, jnp.int32), 0.9)
    with pytest.raises(ValueError, match="values"):
        planners.q_from_v(mdp, jnp.zeros(5), 0.9)
    with pytest.raises(ValueError, match="max_iterations"):
        planners.value_iteration(mdp, 0.9, max_iterations=0)
