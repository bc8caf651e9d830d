import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_jax import envs
from mbrl_jax.agents import alphazero, mcts, muzero
from mbrl_jax.agents.targets import completed_returns, n_step_bootstrap, n_step_targets
from mbrl_jax.experiments.compare import run_comparison
from mbrl_jax.models.value_transforms import h, h_inverse, scalar_to_support, support_to_scalar
from mbrl_jax.planners.search import SearchConfig, make_search, rollout_evaluator


def _chain_step(params, key, state, action):
    """A 1-D chain 0..5: action 1 moves right, 0 left; reaching 5 pays 1 and ends."""
    nxt = jnp.clip(state + 2 * action - 1, 0, 5)
    return nxt, (nxt == 5).astype(jnp.float32), nxt == 5


@pytest.mark.parametrize("policy", ["gumbel", "muzero", "ucb1"])
def test_search_finds_the_rewarding_action_on_a_chain(policy):
    evaluate = rollout_evaluator(_chain_step, 2, num_rollouts=32, depth=10, discount=0.9)
    search = jax.jit(
        make_search(
            SearchConfig(num_simulations=64, policy=policy, discount=0.9, temperature=0.1),
            _chain_step,
            evaluate,
            2,
        )
    )
    result = search(None, jax.random.key(0), jnp.array([3, 4, 1, 0]))
    assert result.action.shape == (4,) and result.action.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(result.action), [1, 1, 1, 1])
    np.testing.assert_allclose(np.asarray(result.policy.sum(-1)), 1.0, atol=1e-5)
    assert result.visit_counts.shape == (4, 2)
    # From state 4 the right move pays 1 at once: Q(4, right) = 1.
    assert abs(float(result.q_values[1, 1]) - 1.0) < 1e-5
    # Values fall with distance from the goal.
    assert float(result.value[1]) > float(result.value[0]) > float(result.value[2])
    search(None, jax.random.key(1), jnp.array([0, 1, 2, 3]))
    assert search._cache_size() == 1


def test_terminal_transitions_stop_the_search():
    # Both actions end the episode; the right one pays 1. Nothing beyond counts.
    def step(params, key, state, action):
        return state, action.astype(jnp.float32), jnp.bool_(True)

    def evaluate(params, key, states):
        return jnp.zeros((states.shape[0], 2)), jnp.full(states.shape[0], 100.0)

    search = make_search(SearchConfig(num_simulations=8, policy="ucb1"), step, evaluate, 2)
    result = search(None, jax.random.key(0), jnp.zeros(1, jnp.int32))
    np.testing.assert_allclose(np.asarray(result.q_values[0]), [0.0, 1.0], atol=1e-6)


def test_invalid_actions_are_never_chosen():
    def mask(params, state):
        return jnp.array([True, False])  # moving right is forbidden

    evaluate = rollout_evaluator(_chain_step, 2, num_rollouts=4, depth=5)
    for policy in ("gumbel", "muzero", "ucb1"):
        search = make_search(
            SearchConfig(num_simulations=16, policy=policy), _chain_step, evaluate, 2, mask
        )
        result = search(None, jax.random.key(0), jnp.array([4, 3]))
        np.testing.assert_array_equal(np.asarray(result.action), [0, 0])


def test_search_bad_input():
    with pytest.raises(ValueError, match="num_simulations"):
        SearchConfig(num_simulations=0)
    with pytest.raises(ValueError, match="policy"):
        SearchConfig(policy="alphago")

    def wrong_value(params, key, states):
        return jnp.zeros((states.shape[0], 2)), jnp.zeros((states.shape[0], 1))

    search = make_search(SearchConfig(num_simulations=4), _chain_step, wrong_value, 2)
    with pytest.raises(ValueError, match="value"):
        search(None, jax.random.key(0), jnp.array([0, 1]))

    # A model with 3 actions for a 2-action environment.
    def three_actions(params, key, states):
        return jnp.zeros((states.shape[0], 3)), jnp.zeros(states.shape[0])

    search = make_search(SearchConfig(num_simulations=4), _chain_step, three_actions, 2)
    with pytest.raises(ValueError, match="action count"):
        search(None, jax.random.key(0), jnp.array([0, 1]))
    env, params = envs.make("Pendulum-v1")
    with pytest.raises(ValueError, match="discrete actions"):
        alphazero.make_train(alphazero.Config(), env, params)


def test_mcts_on_dyna_maze_with_true_model_is_short():
    env, params = envs.make("DynaMaze")
    config = mcts.Config(num_steps=120, max_episodes=2)
    out = jax.jit(jax.vmap(mcts.make_train(config, env, params)))(
        jax.random.split(jax.random.key(0), 4)
    )
    done = np.asarray(out.done)
    assert (done.sum(1) == 2).all()
    # Steps of the first episode of each seed (shortest: 14).
    first = done.argmax(1) + 1
    assert first.mean() <= 22.0, first
    assert not np.asarray(out.active)[:, -1].any()  # the loop stopped early


def test_value_transforms_invert():
    x = jnp.array([-300.0, -1.5, 0.0, 0.3, 1.0, 42.0, 500.0])
    np.testing.assert_allclose(np.asarray(h_inverse(h(x))), np.asarray(x), rtol=1e-4, atol=1e-4)
    y = jnp.array([-2.7, 0.0, 0.4, 3.0, 9.99])
    probs = scalar_to_support(y, 10)
    np.testing.assert_allclose(np.asarray(probs.sum(-1)), 1.0, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(support_to_scalar(jnp.log(probs + 1e-12), 10)), np.asarray(y), atol=1e-4
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


SMALL_AZ = alphazero.Config(
    num_iterations=3,
    num_envs=4,
    unroll_length=8,
    search=SearchConfig(num_simulations=4, discount=0.99),
    hidden=(16,),
    num_minibatches=2,
    n_step=4,
    eval_envs=2,
    eval_steps=20,
)
SMALL_MZ = muzero.Config(
    num_iterations=3,
    num_envs=4,
    unroll_length=8,
    search=SearchConfig(num_simulations=4, discount=0.99),
    latent_size=8,
    hidden=(16,),
    buffer_size=32,
    unroll_steps=3,
    n_step=4,
    batch_size=8,
    updates_per_iteration=2,
    eval_envs=2,
    eval_steps=20,
)


@pytest.mark.parametrize("module,config", [(alphazero, SMALL_AZ), (muzero, SMALL_MZ)])
def test_search_agents_run_and_do_not_recompile(module, config):
    env, params = envs.make("CartPole-v1")
    train = jax.jit(module.make_train(config, env, params))
    out = train(jax.random.key(0))
    train(jax.random.key(1))
    assert train._cache_size() == 1
    assert out.reward.shape == (24,) and out.done.shape == (24,)
    assert out.loss.shape == (3,) and bool(np.all(np.isfinite(np.asarray(out.loss))))
    assert out.eval_return.shape == (2,)
    assert bool(np.all((np.asarray(out.eval_return) >= 1) & (np.asarray(out.eval_return) <= 20)))


def test_trajectory_buffer_windows_stop_at_episode_ends():
    buf = muzero.trajectory_buffer_init(8, 1, (1,), 2)
    steps = {
        "obs": jnp.arange(6, dtype=jnp.float32).reshape(6, 1, 1),
        "action": jnp.zeros((6, 1), jnp.int32),
        "reward": jnp.ones((6, 1)),
        "done": jnp.array([0, 0, 1, 0, 0, 0], bool)[:, None],
        "policy": jnp.full((6, 1, 2), 0.5),
        "partial": jnp.zeros((6, 1)),
        "boot_discount": jnp.zeros((6, 1)),
        "boot_obs": jnp.zeros((6, 1, 1)),
    }
    buf = muzero.trajectory_buffer_add(buf, steps)
    buf = muzero.trajectory_buffer_add(buf, jax.tree.map(lambda x: x + 0, steps))
    assert int(buf.size) == 8 and int(buf.position) == 4
    window = muzero.trajectory_buffer_sample(buf, jax.random.key(0), 64, 2)
    obs = np.asarray(window["obs"][..., 0])  # [B, 3]
    # Oldest row is logical step 0 = obs 4 of the first add; windows are consecutive in time.
    sequence = [4, 5, 0, 1, 2, 3, 4, 5]
    for row in obs:
        start = sequence.index(int(row[0]))
        assert list(row.astype(int)) == sequence[start : start + 3]
    valid = np.asarray(window["valid"])
    done = np.asarray(window["done"])
    for v, d in zip(valid, done, strict=True):
        ended = np.cumsum(d) - d
        np.testing.assert_array_equal(v, ended == 0)


def test_compare_runs_the_search_agents():
    results = run_comparison("DynaMaze", ["mcts:20"], seeds=2, episodes=1, log=lambda m: None)
    entry = results["agents"]["mcts:20"]
    assert entry["summary"]["episodes_completed"] == 1.0
    assert len(entry["episode_lengths"]) == 2


def test_alphazero_learns_cartpole_balance():
    """Fixed keys; a short run must beat random play (about 22 steps) clearly."""
    env, params = envs.make("CartPole-v1")
    config = dataclasses.replace(alphazero.Config(), num_iterations=12, num_envs=16)
    out = jax.jit(jax.vmap(alphazero.make_train(config, env, params)))(
        jax.random.split(jax.random.key(0), 2)
    )
    assert float(np.asarray(out.eval_return).mean()) >= 100.0
