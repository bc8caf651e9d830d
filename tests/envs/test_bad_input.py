"""Environments refuse what they cannot mean: unreachable goals, out-of-range
and non-finite actions (a clear error outside jit, a visible result inside)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_jax import envs
from mbrl_jax.envs.continuous_cartpole import ContinuousCartPole
from mbrl_jax.envs.layouts import make_maze_params, validate_params
from mbrl_jax.envs.maze import GridMaze


def test_goal_equal_to_start_or_unreachable_is_refused():
    with pytest.raises(ValueError, match="cannot be reached from the start"):
        make_maze_params(["S#.", "###", "..G"])
    # Reachable before the change, walled off after it.
    with pytest.raises(ValueError, match="cannot be reached .* in wall phase 1"):
        make_maze_params(["S.G", "..."], layout_after_change=["S#G", ".#."], change_step=10)
    params = make_maze_params(["S.G"])
    with pytest.raises(ValueError, match="the goal is the start cell"):
        validate_params(params.replace(goal=params.start))


def test_non_finite_rewards_are_refused():
    with pytest.raises(ValueError, match="step_reward must be a finite number"):
        make_maze_params(["S.G"], step_reward=float("nan"))
    with pytest.raises(ValueError, match="goal_reward must be a finite number"):
        make_maze_params(["S.G"], goal_reward=float("inf"))


@pytest.mark.parametrize("action", [7, -1, 4, 100])
def test_maze_out_of_range_action_does_not_move(action):
    env, params = envs.make("DynaMaze")
    _, state = env.reset(jax.random.key(0), params)
    obs, next_state, reward, terminated, _, _ = jax.jit(env.step, static_argnums=())(
        jax.random.key(1), state, jnp.int32(action), params
    )
    assert int(obs) == int(state.position) and not bool(terminated)
    with pytest.raises(ValueError, match=r"actions must be in \[0, 4\)"):
        env.check_action(action, params)


def test_maze_valid_actions_unchanged_and_checked():
    env, params = envs.make("DynaMaze")
    _, state = env.reset(jax.random.key(0), params)
    moved = {int(env.step(jax.random.key(1), state, a, params)[0]) for a in range(4)}
    assert len(moved) >= 2  # the start cell has open neighbours
    env.check_action(np.arange(4), params)
    with pytest.raises(ValueError, match="integers"):
        env.check_action(1.5, params)
    assert isinstance(env, GridMaze)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_cartpole_non_finite_action_ends_the_episode_visibly(bad):
    env = ContinuousCartPole()
    params = env.default_params
    _, state = env.reset(jax.random.key(0), params)
    _, _, reward, terminated, _ = jax.jit(env.step_env)(
        jax.random.key(1), state, jnp.array([bad]), params
    )
    assert bool(terminated) and np.isnan(float(reward))
    with pytest.raises(ValueError, match="actions must be finite"):
        env.check_action([bad], params)


def test_cartpole_finite_actions_unchanged():
    env = ContinuousCartPole()
    params = env.default_params
    _, state = env.reset(jax.random.key(0), params)
    obs, _, reward, terminated, _ = env.step_env(jax.random.key(1), state, jnp.array([0.5]), params)
    assert float(reward) == 1.0 and not bool(terminated) and np.isfinite(np.asarray(obs)).all()
    clipped = env.step_env(jax.random.key(1), state, jnp.array([5.0]), params)[0]
    at_one = env.step_env(jax.random.key(1), state, jnp.array([1.0]), params)[0]
    np.testing.assert_array_equal(clipped, at_one)
    env.check_action([0.3], params)
