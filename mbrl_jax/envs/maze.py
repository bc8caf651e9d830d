"""Grid mazes built from ASCII layouts, as pure gymnax environments.

A layout is a sequence of equal-length strings: ``#`` wall, ``.`` or space free,
``S`` start, ``G`` goal. A maze may have a second wall layout that takes over
after ``change_step`` environment steps, counted across episodes (Sutton &
Barto's blocking and shortcut mazes).

States are cell indices ``row * width + col`` (row 0 at the top). Actions:
0 up, 1 down, 2 left, 3 right. A move into a wall or off the grid leaves the
agent in place. Entering the goal pays ``goal_reward`` and terminates the
episode; every other step pays ``step_reward``. With probability ``slip_prob``
the chosen action is replaced by one drawn uniformly from all four.

Wall phase of a step: the walls of phase 0 apply while ``total_steps <
change_step`` (``total_steps`` counts the steps taken before this one, across
episodes), the walls of phase 1 from then on. Only moves *into* walls are
blocked, so an agent standing on a cell that has just become a wall can still
walk out of it.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from mbrl_jax.core.random import hashed_uniform, lowbias32
from mbrl_jax.core.types import Array, PRNGKey

NUM_ACTIONS = 4
ACTION_NAMES = ("up", "down", "left", "right")
# (row, col) displacement of each action.
ACTION_DELTAS = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]], dtype=np.int32)
# Effectively "never": walls of phase 1 never take over.
NEVER = np.iinfo(np.int32).max

_ALLOWED_CHARS = {"#", ".", " ", "S", "G"}


@struct.dataclass
class MazeState(environment.EnvState):
    """State of one maze.

    Attributes:
      position: ``[]`` int32 cell index of the agent.
      time: ``[]`` int32 steps taken in the current episode.
      total_steps: ``[]`` int32 steps taken since the first reset, across episodes
        (drives the wall change; auto-reset keeps it).
    """

    position: Array
    time: Array
    total_steps: Array


@struct.dataclass
class MazeParams(environment.EnvParams):
    """A maze layout and its reward rules; a batch of these is a batch of mazes.

    Attributes:
      walls: ``[2, H, W]`` bool, walls before (phase 0) and after (phase 1) the change.
      start: ``[]`` int32 start cell index.
      goal: ``[]`` int32 goal cell index.
      change_step: ``[]`` int32 total step count at which phase 1 walls take over.
      step_reward: ``[]`` reward of a step that does not enter the goal.
      goal_reward: ``[]`` reward of entering the goal.
      slip_prob: ``[]`` probability the action is replaced by a uniform random one.
      max_steps_in_episode: ``[]`` int32 episode length at which it is truncated.
    """

    walls: Array = struct.field(default_factory=lambda: jnp.zeros((2, 1, 2), bool))
    start: Array = struct.field(default_factory=lambda: jnp.int32(0))
    goal: Array = struct.field(default_factory=lambda: jnp.int32(1))
    change_step: Array = struct.field(default_factory=lambda: jnp.int32(NEVER))
    step_reward: Array = struct.field(default_factory=lambda: jnp.float32(0.0))
    goal_reward: Array = struct.field(default_factory=lambda: jnp.float32(1.0))
    slip_prob: Array = struct.field(default_factory=lambda: jnp.float32(0.0))
    max_steps_in_episode: Array = struct.field(default_factory=lambda: jnp.int32(10_000))

    @property
    def height(self) -> int:
        return self.walls.shape[-2]

    @property
    def width(self) -> int:
        return self.walls.shape[-1]

    @property
    def num_states(self) -> int:
        return self.walls.shape[-2] * self.walls.shape[-1]


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
    if not 0.0 <= float(params.slip_prob) <= 1.0:
        raise ValueError(f"slip_prob must be in [0, 1], got {float(params.slip_prob)}")
    if int(params.max_steps_in_episode) < 1:
        raise ValueError(
            f"max_steps_in_episode must be >= 1, got {int(params.max_steps_in_episode)}"
        )
    if int(params.change_step) < 0:
        raise ValueError(f"change_step must be >= 0, got {int(params.change_step)}")


def move(walls: Array, position: Array, action: Array, phase: Array | None = None) -> Array:
    """Deterministic move on a wall grid.

    Args:
      walls: ``[H, W]`` bool, or ``[2, H, W]`` with ``phase`` selecting the grid.
      position: ``[]`` int32 cell index.
      action: ``[]`` int32 in ``[0, 4)``.
      phase: ``[]`` int32 wall phase when ``walls`` is ``[2, H, W]``.

    Returns:
      ``[]`` int32 next cell index (``position`` if the move is blocked).
    """
    height, width = walls.shape[-2:]
    row, col = position // width, position % width
    deltas = jnp.asarray(ACTION_DELTAS)
    new_row, new_col = row + deltas[action, 0], col + deltas[action, 1]
    inside = (new_row >= 0) & (new_row < height) & (new_col >= 0) & (new_col < width)
    new_row_c = jnp.clip(new_row, 0, height - 1)
    new_col_c = jnp.clip(new_col, 0, width - 1)
    # Gather the one cell (not a whole [H, W] grid per phase: under vmap that copy
    # would dominate the step).
    blocked = walls[new_row_c, new_col_c] if phase is None else walls[phase, new_row_c, new_col_c]
    free = inside & ~blocked
    return jnp.where(free, new_row_c * width + new_col_c, position).astype(jnp.int32)


def _uniform_from_key(key: PRNGKey) -> Array:
    """``[]`` float32 uniform on ``[0, 1)`` hashed from a key's data (consumes the key)."""
    data = jax.random.key_data(key).reshape(-1)
    seed = data[0]
    for word in data[1:]:
        seed = lowbias32(seed) ^ word
    return hashed_uniform(seed, jnp.uint32(0))


def wall_phase(params: MazeParams, total_steps: Array) -> Array:
    """``[]`` int32 wall phase (0 or 1) in force for a step taken after ``total_steps``."""
    return (total_steps >= params.change_step).astype(jnp.int32)


class GridMaze(environment.Environment[MazeState, MazeParams]):
    """A grid maze; the layout lives in :class:`MazeParams`, so the object holds no arrays.

    Observation: the ``[]`` int32 cell index. For neural models wrap it with
    :class:`mbrl_jax.envs.wrappers.VectorObservation` (one-hot or (row, col)).
    """

    def __init__(self, name: str = "GridMaze", default_params: MazeParams | None = None):
        super().__init__()
        self._name = name
        self._default_params = default_params

    @property
    def name(self) -> str:
        return self._name

    @property
    def default_params(self) -> MazeParams:
        if self._default_params is None:
            raise ValueError(f"{self._name} has no default layout; pass params explicitly")
        return self._default_params

    @property
    def num_actions(self) -> int:
        return NUM_ACTIONS

    def step(
        self,
        key: PRNGKey,
        state: MazeState,
        action: int | Array,
        params: MazeParams | None = None,
    ):
        """gymnax step with auto-reset; ``total_steps`` keeps counting across episodes.

        Same contract as ``gymnax.environments.environment.Environment.step``; the
        reset needs no randomness (the start cell is fixed), so the key is not
        split and a maze without slip draws no random numbers at all.

        Returns:
          ``(obs, state, reward, terminated, truncated, info)`` with
          ``info["final_observation"]`` the observation before auto-reset.
        """
        if params is None:
            params = self.default_params
        obs_step, state_step, reward, terminated, info = self.step_env(key, state, action, params)
        truncated = self.is_truncated(state_step, params)
        done = terminated | truncated
        start = jnp.asarray(params.start, jnp.int32)
        next_state = MazeState(
            position=jnp.where(done, start, state_step.position),
            time=jnp.where(done, 0, state_step.time),
            total_steps=state_step.total_steps,
        )
        info = {
            **info,
            "terminated": terminated,
            "truncated": truncated,
            "final_observation": obs_step,
        }
        return next_state.position, next_state, reward, terminated, truncated, info

    def step_env(self, key: PRNGKey, state: MazeState, action: int | Array, params: MazeParams):
        # One uniform number decides both whether the action slips and, if it
        # does, which action replaces it: u < p is a slip, and u / p is uniform
        # on [0, 1). It is a hash of the key's data rather than a Threefry draw:
        # a few integer operations and no branch, whatever the slip probability.
        u = _uniform_from_key(key)
        slipped = u < params.slip_prob
        random_action = jnp.minimum(
            (u / jnp.maximum(params.slip_prob, 1e-12) * NUM_ACTIONS).astype(jnp.int32),
            NUM_ACTIONS - 1,
        )
        action = jnp.where(slipped, random_action, jnp.asarray(action, jnp.int32))
        phase = wall_phase(params, state.total_steps)
        position = move(params.walls, state.position, action, phase)
        reached = position == params.goal
        reward = jnp.where(reached, params.goal_reward, params.step_reward).astype(jnp.float32)
        next_state = MazeState(
            position=position, time=state.time + 1, total_steps=state.total_steps + 1
        )
        return position, next_state, reward, reached, {"wall_phase": phase}

    def reset_env(self, key: PRNGKey, params: MazeParams):
        del key
        state = MazeState(
            position=jnp.asarray(params.start, jnp.int32),
            time=jnp.int32(0),
            total_steps=jnp.int32(0),
        )
        return state.position, state

    def get_obs(self, state: MazeState, params=None, key=None) -> Array:
        return state.position

    def is_terminated(self, state: MazeState, params: MazeParams) -> Array:
        return state.position == params.goal

    def action_space(self, params: MazeParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(NUM_ACTIONS)

    def observation_space(self, params: MazeParams) -> spaces.Discrete:
        return spaces.Discrete(params.num_states)

    def state_space(self, params: MazeParams) -> spaces.Dict:
        n = params.num_states
        return spaces.Dict(
            {
                "position": spaces.Discrete(n),
                "time": spaces.Discrete(int(params.max_steps_in_episode)),
                "total_steps": spaces.Discrete(int(NEVER)),
            }
        )
