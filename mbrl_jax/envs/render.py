"""Pictures of mazes: ASCII text and matplotlib figures with values and greedy arrows."""

from __future__ import annotations

import numpy as np

from mbrl_jax.envs.maze import ACTION_DELTAS, MazeParams

_ARROWS = "^v<>"


def render_ascii(
    params: MazeParams, position: int | None = None, phase: int = 0, policy=None
) -> str:
    """Draws a maze as text.

    Args:
      params: the maze (unbatched).
      position: cell index of the agent, drawn as ``A``.
      phase: wall phase to draw.
      policy: optional ``[S]`` greedy actions, drawn as arrows on free cells.

    Returns:
      One line per maze row: ``#`` wall, ``S`` start, ``G`` goal, ``.`` free.
    """
    walls = np.asarray(params.walls[phase])
    height, width = walls.shape
    policy = None if policy is None else np.asarray(policy)
    lines = []
    for r in range(height):
        row = []
        for c in range(width):
            idx = r * width + c
            if position is not None and idx == int(position):
                ch = "A"
            elif walls[r, c]:
                ch = "#"
            elif idx == int(params.start):
                ch = "S"
            elif idx == int(params.goal):
                ch = "G"
            elif policy is not None:
                ch = _ARROWS[int(policy[idx])]
            else:
                ch = "."
            row.append(ch)
        lines.append("".join(row))
    return "\n".join(lines)


def plot_maze(params: MazeParams, values=None, policy=None, phase: int = 0, ax=None, title=None):
    """Draws a maze with matplotlib: walls black, an optional value heat map and policy arrows.

    Args:
      params: the maze (unbatched).
      values: optional ``[S]`` state values (heat map over free cells).
      policy: optional ``[S]`` greedy actions (arrows on free, non-goal cells).
      phase: wall phase to draw.
      ax: matplotlib axes to draw on; a new figure is made if ``None``.
      title: optional title.

    Returns:
      The matplotlib ``Figure``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    walls = np.asarray(params.walls[phase])
    height, width = walls.shape
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(3.0, 0.6 * width), max(2.5, 0.6 * height)))
    else:
        fig = ax.figure
    if values is not None:
        grid = np.asarray(values, dtype=float).reshape(height, width)
        grid = np.ma.masked_where(walls, grid)
        image = ax.imshow(grid, cmap="viridis", origin="upper")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="value")
    ax.imshow(
        np.ma.masked_where(~walls, np.ones_like(walls, dtype=float)),
        cmap="gray_r",
        vmin=0,
        vmax=1,
        origin="upper",
    )
    goal_rc = divmod(int(params.goal), width)
    start_rc = divmod(int(params.start), width)
    if policy is not None:
        policy = np.asarray(policy).reshape(height, width)
        for r in range(height):
            for c in range(width):
                if walls[r, c] or (r, c) == goal_rc:
                    continue
                dr, dc = ACTION_DELTAS[int(policy[r, c])]
                ax.arrow(
                    c - 0.25 * dc,
                    r - 0.25 * dr,
                    0.35 * dc,
                    0.35 * dr,
                    head_width=0.18,
                    head_length=0.12,
                    color="white",
                    length_includes_head=True,
                )
    ax.text(start_rc[1], start_rc[0], "S", ha="center", va="center", color="red", weight="bold")
    ax.text(goal_rc[1], goal_rc[0], "G", ha="center", va="center", color="red", weight="bold")
    ax.set_xticks(np.arange(-0.5, width, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, height, 1), minor=True)
    ax.grid(which="minor", color="0.7", linewidth=0.5)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    if title:
        ax.set_title(title)
    return fig
