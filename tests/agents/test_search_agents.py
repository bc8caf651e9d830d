import dataclasses

import jax
import numpy as np
import pytest

from mbrl_jax import envs
from mbrl_jax.agents import alphazero, mcts, muzero
from mbrl_jax.experiments.compare import run_comparison
from mbrl_jax.planners.search import SearchConfig


@pytest.mark.slow  # a learning test; MCTS runs in the grid and compare tests
def test_mcts_on_dyna_maze_with_true_model_is_short():
    env, params = envs.make("DynaMaze")
    config = mcts.Config(num_steps=120, max_episodes=2)
    out = jax.jit(jax.vmap(mcts.make_train(config, env, params)))(
        jax.random.split(jax.random.key(0), 4)
    )
    done = np.asarray(out.metrics.done)
    assert (done.sum(1) == 2).all()
    # Steps of the first episode of each seed (shortest: 14).
    first = done.argmax(1) + 1
    assert first.mean() <= 22.0, first
    assert not np.asarray(out.metrics.active)[:, -1].any()  # the loop stopped early


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
    assert out.metrics.reward.shape == (24,) and out.metrics.done.shape == (24,)
    loss = np.asarray(out.losses["loss"])
    assert loss.shape == (3,) and bool(np.all(np.isfinite(loss)))
    assert out.eval_return.shape == (2,)
    assert bool(np.all((np.asarray(out.eval_return) >= 1) & (np.asarray(out.eval_return) <= 20)))


def test_search_agents_need_discrete_actions():
    env, params = envs.make("Pendulum-v1")
    with pytest.raises(ValueError, match="discrete actions"):
        alphazero.make_train(alphazero.Config(), env, params)


def test_compare_runs_the_search_agents():
    results = run_comparison("DynaMaze", ["mcts:20"], seeds=2, episodes=1, log=lambda m: None)
    entry = results["agents"]["mcts:20"]
    assert entry["summary"]["episodes_completed"] == 1.0
    assert len(entry["episode_lengths"]) == 2


@pytest.mark.slow  # a learning test
def test_alphazero_learns_cartpole_balance():
    """Fixed keys; a short run must beat random play (about 22 steps) clearly."""
    env, params = envs.make("CartPole-v1")
    config = dataclasses.replace(alphazero.Config(), num_iterations=12, num_envs=16)
    out = jax.jit(jax.vmap(alphazero.make_train(config, env, params)))(
        jax.random.split(jax.random.key(0), 2)
    )
    assert float(np.asarray(out.eval_return).mean()) >= 100.0
