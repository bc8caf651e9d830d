"""Maze layouts: the named ones (coordinates are (row, col) from the top-left),
parsing an ASCII layout into :class:`~mbrl_jax.envs.maze.MazeParams`, and
validating params (a reachable goal, finite rewards, ...)."""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from mbrl_jax.envs.maze import ACTION_DELTAS, NEVER, MazeParams

_ALLOWED_CHARS = {"#", ".", " ", "S", "G"}

# Sutton & Barto, Example 8.1: start (2, 0), goal (0, 8),
# walls (1,2) (2,2) (3,2) (0,7) (1,7) (2,7) (4,5).
DYNA_MAZE = (
    ".......#G",
    "..#....#.",
    "S.#....#.",
    "..#......",
    ".....#...",
    ".........",
)

# Sutton & Barto, Figure 8.4: row 3 walled at columns 0-7, later at columns 1-8.
BLOCKING_MAZE = (
    "........G",
    ".........",
    ".........",
    "########.",
    ".........",
    "...S.....",
)
BLOCKING_MAZE_AFTER = (
    "........G",
    ".........",
    ".........",
    ".########",
    ".........",
    "...S.....",
)

# Sutton & Barto, Figure 8.5: row 3 walled at columns 1-8, later at columns 1-7.
SHORTCUT_MAZE = BLOCKING_MAZE_AFTER
SHORTCUT_MAZE_AFTER = (
    "........G",
    ".........",
    ".........",
    ".#######.",
    ".........",
    "...S.....",
)

GRID_WORLD_5X5 = (
    "S....",
    ".....",
    ".....",
    ".....",
    "....G",
)


def scale_layout(layout: Sequence[str], factor: int) -> tuple[str, ...]:
    """Scales a layout up: each cell becomes ``factor x factor`` cells.

    Walls and free cells are replicated; the start and goal stay single cells at
    the top-left corner of their scaled block (Sutton & Barto, Example 8.4).
    """
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    rows: list[str] = []
    for row in layout:
        for i in range(factor):
            cells = []
            for ch in row:
                if ch in "SG":
                    cells.append(ch + "." * (factor - 1) if i == 0 else "." * factor)
                else:
                    cells.append(ch * factor)
            rows.append("".join(cells))
    return tuple(rows)


def parse_layout(layout: Sequence[str]) -> tuple[np.ndarray, int, int]:
    """Parses an ASCII layout.

    Returns:
      ``(walls [H, W] bool, start index, goal index)``.

    Raises:
      ValueError: on an empty or ragged layout, an unknown character, or a missing
        or repeated start or goal.
    """
    if isinstance(layout, str):
        layout = [row for row in layout.strip("\n").split("\n")]
    rows = list(layout)
    if not rows or not rows[0]:
        raise ValueError("maze layout is empty")
    width = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(
                f"maze layout rows are ragged: row 0 has {width} characters, row {i} has {len(row)}"
            )
        bad = set(row) - _ALLOWED_CHARS
        if bad:
            raise ValueError(
                f"maze layout row {i} has unknown character(s) {sorted(bad)}; allowed: "
                "'#' wall, '.' or ' ' free, 'S' start, 'G' goal"
            )
    grid = np.array([list(row) for row in rows])
    walls = grid == "#"
    starts, goals = np.argwhere(grid == "S"), np.argwhere(grid == "G")
    for name, found in (("start 'S'", starts), ("goal 'G'", goals)):
        if len(found) == 0:
            raise ValueError(f"maze layout has no {name}")
        if len(found) > 1:
            raise ValueError(
                f"maze layout has {len(found)} cells marked {name}; exactly one allowed"
            )
    start = int(starts[0][0] * width + starts[0][1])
    goal = int(goals[0][0] * width + goals[0][1])
    return walls, start, goal


def make_maze_params(
    layout: Sequence[str],
    layout_after_change: Sequence[str] | None = None,
    change_step: int | None = None,
    step_reward: float = 0.0,
    goal_reward: float = 1.0,
    slip_prob: float = 0.0,
    max_steps_in_episode: int = 10_000,
) -> MazeParams:
    """Builds :class:`MazeParams` from one or two ASCII layouts.

    Args:
      layout: rows of the maze (phase 0 walls, start and goal).
      layout_after_change: rows of the maze after ``change_step`` steps; must
        have the same size, start and goal. ``None`` keeps the walls fixed.
      change_step: total environment steps after which ``layout_after_change``
        applies. Required with ``layout_after_change``.
      step_reward, goal_reward, slip_prob, max_steps_in_episode: see :class:`MazeParams`.

    Raises:
      ValueError: on a malformed layout or out-of-range values.
    """
    walls0, start, goal = parse_layout(layout)
    if layout_after_change is None:
        walls1 = walls0
        change = NEVER if change_step is None else int(change_step)
    else:
        walls1, start1, goal1 = parse_layout(layout_after_change)
        if walls1.shape != walls0.shape:
            raise ValueError(
                f"layout_after_change has shape {walls1.shape}, layout has {walls0.shape}"
            )
        if (start1, goal1) != (start, goal):
            raise ValueError("layout_after_change must keep the start and goal cells")
        if change_step is None:
            raise ValueError("change_step is required when layout_after_change is given")
        change = int(change_step)
    params = MazeParams(
        walls=jnp.asarray(np.stack([walls0, walls1])),
        start=jnp.int32(start),
        goal=jnp.int32(goal),
        change_step=jnp.int32(change),
        step_reward=jnp.float32(step_reward),
        goal_reward=jnp.float32(goal_reward),
        slip_prob=jnp.float32(slip_prob),
        max_steps_in_episode=jnp.int32(max_steps_in_episode),
    )
    validate_params(params)
    return params


def validate_params(params: MazeParams) -> None:
    """Checks concrete parameter values; raises ``ValueError`` naming the field."""
    walls = np.asarray(params.walls)
    if walls.ndim != 3 or walls.shape[0] != 2:
        raise ValueError(f"walls must have shape [2, H, W], got {walls.shape}")
    num_states = walls.shape[1] * walls.shape[2]
    for name in ("start", "goal"):
        idx = int(getattr(params, name))
        if not 0 <= idx < num_states:
            raise ValueError(f"{name} must be in [0, {num_states}), got {idx}")
        for phase in (0, 1):
            if walls[phase].reshape(-1)[idx]:
                raise ValueError(
                    f"{name} cell {divmod(idx, walls.shape[2])} is a wall in phase {phase}"
                )
    start, goal = int(params.start), int(params.goal)
    if start == goal:
        raise ValueError(f"the goal is the start cell {divmod(start, walls.shape[2])}")
    for phase in (0, 1):
        if not _reachable(walls[phase], start, goal):
            raise ValueError(
                f"the goal {divmod(goal, walls.shape[2])} cannot be reached from the start "
                f"{divmod(start, walls.shape[2])} in wall phase {phase}"
            )
    for name in ("step_reward", "goal_reward"):
        if not np.isfinite(float(getattr(params, name))):
            raise ValueError(f"{name} must be a finite number, got {float(getattr(params, name))}")
    if not 0.0 <= float(params.slip_prob) <= 1.0:
        raise ValueError(f"slip_prob must be in [0, 1], got {float(params.slip_prob)}")
    if int(params.max_steps_in_episode) < 1:
        raise ValueError(
            f"max_steps_in_episode must be >= 1, got {int(params.max_steps_in_episode)}"
        )
    if int(params.change_step) < 0:
        raise ValueError(f"change_step must be >= 0, got {int(params.change_step)}")


def _reachable(walls: np.ndarray, start: int, goal: int) -> bool:
    """Breadth-first search over free cells (plain NumPy, on concrete layouts)."""
    height, width = walls.shape
    seen, frontier = {start}, [start]
    while frontier:
        nxt = []
        for cell in frontier:
            row, col = divmod(cell, width)
            for dr, dc in ACTION_DELTAS:
                r, c = row + dr, col + dc
                if 0 <= r < height and 0 <= c < width and not walls[r, c]:
                    n = r * width + c
                    if n == goal:
                        return True
                    if n not in seen:
                        seen.add(n)
                        nxt.append(n)
        frontier = nxt
    return False
