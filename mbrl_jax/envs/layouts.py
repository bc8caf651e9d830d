"""Named maze layouts (coordinates are (row, col) from the top-left)."""

from __future__ import annotations

from collections.abc import Sequence

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
