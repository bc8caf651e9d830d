"""The plain-Python references the benchmarks measure against must stay correct."""

import os
import sys

import numpy as np

from mbrl_jax.envs import layouts

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))

import dyna_throughput  # noqa: E402
import env_throughput  # noqa: E402


def test_textbook_dyna_q_learns_the_maze():
    out = dyna_throughput.textbook_dyna_q(num_steps=3000, planning_steps=20, seed=1)
    assert out["planning_updates"] == 3000 * 20
    # Once planning has propagated the goal's value, episodes take ~16 steps.
    assert out["episodes"] > 40


def test_reference_mazes_reach_the_goal():
    assert env_throughput.python_maze_steps(layouts.DYNA_MAZE, 20_000) > 3
    walls = np.array([[c == "#" for c in row] for row in layouts.DYNA_MAZE])
    assert env_throughput.numpy_maze_steps(walls, 18, 8, 64, 300) > 0


def test_random_actions_are_uniform():
    import jax

    actions = np.asarray(env_throughput.random_actions(jax.random.key(0), 40_000, 4))
    np.testing.assert_allclose(np.bincount(actions, minlength=4) / 40_000, 0.25, atol=0.01)
