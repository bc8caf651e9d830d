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


def move(walls: Array, position: Array, action: Array, phase: Array | None = None) -> Array:
    """Deterministic move on a wall grid.

    Args:
      walls: ``[H, W]`` bool, or ``[2, H, W]`` with ``phase`` selecting the grid.
      position: ``[]`` int32 cell index.
      action: ``[]`` int32 in ``[0, 4)``; any other value does not move (it is
        not clamped to a valid action).
      phase: ``[]`` int32 wall phase when ``walls`` is ``[2, H, W]``.

    Returns:
      ``[]`` int32 next cell index (``position`` if the move is blocked or the
      action is out of range).
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
    valid = (action >= 0) & (action < NUM_ACTIONS)
    free = inside & ~blocked & valid
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

    def check_action(self, action, params: MazeParams | None = None) -> None:
        """Raises ``ValueError`` unless every entry of a concrete ``action`` is an
        integer in ``[0, 4)`` (for the Python API, outside ``jit``: inside, an
        out-of-range action leaves the agent where it is)."""
        values = np.asarray(action)
        if not np.issubdtype(values.dtype, np.integer) or values.size == 0:
            raise ValueError(f"{self._name}: actions must be integers in [0, 4), got {action!r}")
        bad = values[(values < 0) | (values >= NUM_ACTIONS)]
        if bad.size:
            raise ValueError(f"{self._name}: actions must be in [0, 4), got {bad.ravel()[0]}")

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
