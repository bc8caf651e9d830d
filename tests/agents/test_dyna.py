import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_jax import envs
from mbrl_jax.agents import dyna_q
from mbrl_jax.agents import prioritized_sweeping as ps
from mbrl_jax.agents.tabular import HyperParams
from mbrl_jax.core import returns as stats

SEEDS = jax.random.split(jax.random.key(2026), 30)


def run(module, env_name, seeds=SEEDS, **config):
    env, params = envs.make(env_name)
    train = module.make_train(module.Config(**config), env, params)
    return jax.jit(jax.vmap(train))(seeds)


def episodes_to_near_optimal(out, episodes=50, threshold=18.0):
    lengths, valid = jax.vmap(lambda d: stats.episode_lengths(d, episodes))(out.metrics.done)
    assert bool(jnp.all(valid)), "every seed should finish the episodes"
    mean = np.asarray(lengths.mean(0))
    return int(np.argmax(mean <= threshold)) if np.any(mean <= threshold) else episodes, mean


@pytest.mark.slow
def test_dyna_maze_planning_speeds_learning():
    # Figure 8.2 settings. Near-optimal: the 30-seed mean episode length within
    # 18 steps (optimal 14 plus the detours epsilon = 0.1 exploration costs).
    found = {}
    for n in (0, 5, 50):
        out = run(
            dyna_q,
            "DynaMaze",
            num_steps=12_000,
            planning_steps=n,
            learning_rate=0.1,
            epsilon=0.1,
            discount=0.95,
            max_episodes=50,
        )
        found[n] = episodes_to_near_optimal(out)
    assert found[50][0] < found[5][0] < found[0][0]
    assert np.mean(found[50][1][40:50]) <= 17.5
    assert found[50][1][1] < found[5][1][1] < found[0][1][1]


@pytest.mark.slow
@pytest.mark.parametrize(
    "env_name, steps, change, n, kappa",
    [("BlockingMaze", 3000, 1000, 10, 1e-4), ("ShortcutMaze", 6000, 3000, 50, 1e-3)],
)
@pytest.mark.parametrize("planning", ["sequential", "batched"])
def test_dyna_q_plus_beats_dyna_q_after_the_change(env_name, steps, change, n, kappa, planning):
    after = {}
    for k in (0.0, kappa):
        out = run(
            dyna_q,
            env_name,
            seeds=SEEDS[:20],
            num_steps=steps,
            planning_steps=n,
            learning_rate=1.0,
            epsilon=0.1,
            discount=0.95,
            kappa=k,
            planning=planning,
        )
        cum = np.asarray(stats.cumulative_reward(out.metrics.reward)).mean(0)
        after[k] = cum[-1] - cum[change - 1]
    assert after[kappa] > 1.2 * after[0.0]


@pytest.mark.slow
def test_prioritized_sweeping_needs_fewer_updates():
    def updates_to_optimal(module, **extra):
        out = run(
            module,
            "DynaMaze",
            num_steps=3000,
            planning_steps=5,
            learning_rate=0.5,
            epsilon=0.1,
            discount=0.95,
            greedy_eval_interval=10,
            **extra,
        )
        # Optimal as in the usual reproduction of Example 8.4: within 20% of the
        # shortest path (14 steps), so <= 16 steps.
        return np.asarray(
            stats.updates_until_path_within(out.greedy_path_length, out.metrics.q_updates, 10, 16)
        )

    dyna = updates_to_optimal(dyna_q)
    sweep = updates_to_optimal(ps, theta=1e-4)
    assert np.median(sweep) < 0.5 * np.median(dyna)
    assert np.mean(np.isfinite(sweep)) >= 0.9


def test_prioritized_sweeping_respects_update_cap():
    # Long enough that every seed reaches the goal (the queue stays empty before).
    out = run(ps, "DynaMaze", seeds=SEEDS[:4], num_steps=3000, planning_steps=3)
    assert bool(out.metrics.terminated.any(axis=1).all())
    updates = np.asarray(out.metrics.planning_updates)
    assert updates.max() <= 3 and updates.sum() > 0
    np.testing.assert_array_equal(updates, np.asarray(out.metrics.q_updates))


def test_hyperparameters_vmap_as_traced_values():
    env, params = envs.make("DynaMaze")
    train = dyna_q.make_train(
        dyna_q.Config(num_steps=500, planning_steps=5, kappa=1e-3), env, params
    )
    hp = HyperParams(
        learning_rate=jnp.array([0.1, 0.5]),
        epsilon=jnp.array([0.0, 0.2]),
        discount=jnp.array([0.9, 0.95]),
        kappa=jnp.array([0.0, 1e-3]),
    )
    out = jax.jit(jax.vmap(train))(SEEDS[:2], hp)
    assert out.q_values.shape == (2, 54, 4)
    single = jax.jit(train)(SEEDS[1], jax.tree.map(lambda x: x[1], hp))
    np.testing.assert_allclose(np.asarray(out.q_values[1]), np.asarray(single.q_values), atol=1e-6)


def test_max_episodes_stops_the_agent():
    out = run(
        dyna_q, "DynaMaze", seeds=SEEDS[:3], num_steps=4000, planning_steps=20, max_episodes=5
    )
    np.testing.assert_array_equal(np.asarray(out.metrics.done.sum(1)), [5, 5, 5])
    last = np.asarray(jnp.argmax(jnp.cumsum(out.metrics.done, 1) >= 5, axis=1))
    for seed, t in enumerate(last):
        assert not np.asarray(out.metrics.planning_updates[seed, t + 1 :]).any()


def test_output_shapes_and_episode_helpers():
    out = run(dyna_q, "GridWorld-5x5", seeds=SEEDS[:2], num_steps=300, planning_steps=2)
    assert out.metrics.reward.shape == (2, 300) and out.metrics.done.shape == (2, 300)
    assert out.model.next_state.shape == (2, 25, 4)
    lengths, valid = stats.episode_lengths(out.metrics.done[0], 100)
    returns, _ = stats.episode_returns(out.metrics.reward[0], out.metrics.done[0], 100)
    n = int(out.metrics.done[0].sum())
    assert int(valid.sum()) == n and int(lengths[:n].sum()) <= 300
    lengths, returns = np.asarray(lengths[:n]), np.asarray(returns[:n])
    # -0.01 a step and +1 on reaching the goal; episodes cut at 100 steps get no +1.
    reached = lengths < 100
    np.testing.assert_allclose(returns[reached], 1.0 - 0.01 * (lengths[reached] - 1), atol=1e-5)
    np.testing.assert_allclose(returns[~reached], -0.01 * lengths[~reached], atol=1e-5)


@pytest.mark.parametrize("module", [dyna_q, ps])
def test_train_does_not_recompile(module):
    env, params = envs.make("DynaMaze")
    train = jax.jit(module.make_train(module.Config(num_steps=100, planning_steps=2), env, params))
    train(jax.random.key(0))
    train(jax.random.key(1))
    hp = HyperParams.from_config(module.Config())
    train(jax.random.key(2), hp)
    train(jax.random.key(3), hp.replace(learning_rate=jnp.float32(0.3)))
    assert train._cache_size() == 2  # one trace without hyper-parameters, one with


@pytest.mark.parametrize(
    "field, value",
    [
        ("planning_steps", -1),
        ("epsilon", 1.5),
        ("epsilon", -0.1),
        ("num_steps", 0),
        ("learning_rate", 0.0),
        ("discount", 1.1),
        ("max_episodes", 0),
    ],
)
@pytest.mark.parametrize("module", [dyna_q, ps])
def test_bad_config_names_the_field(module, field, value):
    with pytest.raises(ValueError, match=field):
        module.Config(**{field: value})


def test_bad_agent_specific_config():
    with pytest.raises(ValueError, match="kappa"):
        dyna_q.Config(kappa=-1.0)
    with pytest.raises(ValueError, match="planning"):
        dyna_q.Config(planning="parallel")
    with pytest.raises(ValueError, match="theta"):
        ps.Config(theta=-1.0)
    with pytest.raises(ValueError, match="greedy_eval_interval"):
        dyna_q.Config(num_steps=100, greedy_eval_interval=7)


def test_non_discrete_env_is_rejected():
    env, params = envs.make("CartPole-v1")
    with pytest.raises(ValueError, match="discrete state index"):
        dyna_q.make_train(dyna_q.Config(), env, params)
    maze, maze_params = envs.make("DynaMaze")
    with pytest.raises(ValueError, match="discrete state index"):
        ps.make_train(ps.Config(), envs.VectorObservation(maze), maze_params)


def test_config_is_frozen():
    config = dyna_q.Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.epsilon = 0.5


def test_train_output_checkpoint_round_trip(tmp_path):
    from mbrl_jax.core import checkpoint

    env, params = envs.make("DynaMaze")
    train = dyna_q.make_train(dyna_q.Config(num_steps=300, planning_steps=3), env, params)
    out = jax.jit(jax.vmap(train))(jax.random.split(jax.random.key(0), 2))
    checkpoint.save(tmp_path / "out", out)
    restored, _ = checkpoint.restore(tmp_path / "out", out)
    assert type(restored) is type(out) and type(restored.metrics) is type(out.metrics)
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(restored), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
