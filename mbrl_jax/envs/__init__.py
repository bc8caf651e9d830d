"""Pure environments on gymnax's API, and the registry that makes them."""

from mbrl_jax.envs.brax_env import BraxEnv, brax_available
from mbrl_jax.envs.continuous_cartpole import ContinuousCartPole, ContinuousCartPoleParams
from mbrl_jax.envs.layouts import make_maze_params, parse_layout, scale_layout, validate_params
from mbrl_jax.envs.maze import (
    ACTION_NAMES,
    NUM_ACTIONS,
    GridMaze,
    MazeParams,
    MazeState,
    move,
    wall_phase,
)
from mbrl_jax.envs.registry import make, maze_names, names, task_functions
from mbrl_jax.envs.render import plot_maze, render_ascii
from mbrl_jax.envs.tabular import to_tabular
from mbrl_jax.envs.tasks import TaskFunctions
from mbrl_jax.envs.wrappers import VectorObservation, vector_observation

__all__ = [
    "BraxEnv",
    "brax_available",
    "ContinuousCartPole",
    "ContinuousCartPoleParams",
    "TaskFunctions",
    "task_functions",
    "ACTION_NAMES",
    "NUM_ACTIONS",
    "GridMaze",
    "MazeParams",
    "MazeState",
    "VectorObservation",
    "make",
    "make_maze_params",
    "maze_names",
    "move",
    "names",
    "parse_layout",
    "plot_maze",
    "render_ascii",
    "scale_layout",
    "to_tabular",
    "validate_params",
    "vector_observation",
    "wall_phase",
]
