"""Pixel observations: our environments drawn as images in pure JAX.

:func:`render` draws ONE state as a ``[size, size, 3]`` uint8 RGB image (row 0
at the top); it is jit- and vmap-able (vectorised inside/outside tests on the
pixel grid, no Python loop over pixels, no NumPy at run time), so a batch of
``B`` states is ``jax.vmap`` of it, ``[B, size, size, 3]``. The geometry is in
fractions of the image size and a pixel belongs to a shape when its centre
``(col + 0.5, row + 0.5)`` lies inside it (no anti-aliasing: frames are exact
and deterministic).

- ``"cartpole"`` (gymnax ``CartPole-v1`` and our ``ContinuousCartPole``, state
  fields ``x`` and ``theta``): a track line, the cart a filled rectangle whose
  centre moves right with ``x`` (``x = ±1.25 * x_threshold`` at the image edges),
  the pole a thick segment from the cart top, leaning right for ``theta > 0``,
  and an axle dot.
- ``"pendulum"`` (gymnax ``Pendulum-v1``, state field ``theta``, 0 upright): a
  rod from the image centre, ``theta > 0`` turning it counter-clockwise (its tip
  to the left, as gym draws it), and a pivot dot.
- ``"maze"`` (our :class:`~mbrl_jax.envs.maze.GridMaze`): the ``[H, W]`` cell
  grid stretched to the image (pixel row ``r`` shows cell row ``r * H // size``),
  walls of the phase in force (:func:`~mbrl_jax.envs.maze.wall_phase`), the goal
  and the agent's cell (drawn over the goal) in their colours.

:class:`PixelObservation` wraps an environment so that its observations are
these images (``[size, size, 3]``, or ``[size, size, 1]`` with ``grayscale``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from gymnax.environments import spaces

from mbrl_jax.core.types import Array
from mbrl_jax.envs.continuous_cartpole import ContinuousCartPole
from mbrl_jax.envs.maze import GridMaze, MazeState, wall_phase

KINDS = ("cartpole", "pendulum", "maze")
MIN_SIZE, MAX_SIZE = 16, 256
_SUPPORTED = "CartPole-v1, ContinuousCartPole, Pendulum-v1, GridMaze (any of our mazes)"

# Colours, RGB uint8.
BACKGROUND = (255, 255, 255)
TRACK = (0, 0, 0)
CART = (40, 40, 40)
POLE = (202, 152, 101)
AXLE = (129, 132, 203)
ROD = (204, 77, 77)
PIVOT = (0, 0, 0)
FREE = (255, 255, 255)
WALL = (64, 64, 64)
GOAL = (0, 170, 0)
AGENT = (0, 0, 255)

# Cart-pole geometry, in fractions of the image size.
CART_TRACK_Y = 0.7  # track line and cart centre
CART_TRACK_HALF_THICKNESS = 0.01
CART_HALF_WIDTH = 0.08
CART_HALF_HEIGHT = 0.04
CART_POLE_LENGTH = 0.4
CART_POLE_HALF_THICKNESS = 0.03
CART_AXLE_RADIUS = 0.02
CART_VIEW_MARGIN = 1.25  # the image spans x in [-1.25, 1.25] * x_threshold
# Pendulum geometry, in fractions of the image size.
PENDULUM_ROD_LENGTH = 0.38
PENDULUM_ROD_HALF_THICKNESS = 0.05
PENDULUM_PIVOT_RADIUS = 0.06


def check_size(size, owner: str = "PixelObservation") -> int:
    """Returns ``size`` if it is an integer in ``[16, 256]``, else raises ``ValueError``."""
    is_int = isinstance(size, int) and not isinstance(size, bool)
    if not is_int or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(
            f"{owner}: size must be an integer in [{MIN_SIZE}, {MAX_SIZE}], got {size!r}"
        )
    return size


def kind_of(env) -> str:
    """The :func:`render` kind of an environment: ``"cartpole"``, ``"pendulum"`` or ``"maze"``.

    Raises:
      ValueError: for an environment with no renderer (naming it and the supported ones).
    """
    if isinstance(env, GridMaze):
        return "maze"
    if isinstance(env, ContinuousCartPole):
        return "cartpole"
    name = getattr(env, "name", type(env).__name__)
    if name == "CartPole-v1":
        return "cartpole"
    if name == "Pendulum-v1":
        return "pendulum"
    raise ValueError(f"env {name!r} has no pixel renderer; supported: {_SUPPORTED}")


def _pixel_centres(size: int) -> tuple[Array, Array]:
    """``[size, size]`` float32 x (column) and y (row) of the pixel centres."""
    centres = jnp.arange(size, dtype=jnp.float32) + 0.5
    return centres[None, :], centres[:, None]


def _near_segment(px, py, ax, ay, bx, by, radius) -> Array:
    """``[size, size]`` bool: pixel centres within ``radius`` of the segment a-b."""
    dx, dy = bx - ax, by - ay
    rx, ry = px - ax, py - ay
    t = jnp.clip((rx * dx + ry * dy) / jnp.maximum(dx * dx + dy * dy, 1e-12), 0.0, 1.0)
    ex, ey = rx - t * dx, ry - t * dy
    return ex * ex + ey * ey <= radius * radius


def _paint(image: Array, mask: Array, colour: tuple[int, int, int]) -> Array:
    return jnp.where(mask[..., None], jnp.asarray(colour, jnp.uint8), image)


def _canvas(size: int, colour: tuple[int, int, int]) -> Array:
    return jnp.broadcast_to(jnp.asarray(colour, jnp.uint8), (size, size, 3))


def _render_cartpole(state, params, size: int) -> Array:
    px, py = _pixel_centres(size)
    x = jnp.asarray(state.x, jnp.float32)
    theta = jnp.asarray(state.theta, jnp.float32)
    x_threshold = jnp.asarray(getattr(params, "x_threshold", 2.4), jnp.float32)
    cart_x = size * (0.5 + 0.5 * x / (CART_VIEW_MARGIN * x_threshold))
    track_y = size * CART_TRACK_Y
    top_y = track_y - size * CART_HALF_HEIGHT
    tip_x = cart_x + size * CART_POLE_LENGTH * jnp.sin(theta)
    tip_y = top_y - size * CART_POLE_LENGTH * jnp.cos(theta)

    image = _canvas(size, BACKGROUND)
    track = jnp.abs(py - track_y) <= size * CART_TRACK_HALF_THICKNESS
    image = _paint(image, jnp.broadcast_to(track, (size, size)), TRACK)
    cart = (jnp.abs(px - cart_x) <= size * CART_HALF_WIDTH) & (
        jnp.abs(py - track_y) <= size * CART_HALF_HEIGHT
    )
    image = _paint(image, cart, CART)
    pole = _near_segment(px, py, cart_x, top_y, tip_x, tip_y, size * CART_POLE_HALF_THICKNESS)
    image = _paint(image, pole, POLE)
    axle_radius = size * CART_AXLE_RADIUS
    axle = (px - cart_x) ** 2 + (py - top_y) ** 2 <= axle_radius * axle_radius
    return _paint(image, axle, AXLE)


def _render_pendulum(state, params, size: int) -> Array:
    del params
    px, py = _pixel_centres(size)
    theta = jnp.asarray(state.theta, jnp.float32)
    centre = 0.5 * size
    tip_x = centre - size * PENDULUM_ROD_LENGTH * jnp.sin(theta)
    tip_y = centre - size * PENDULUM_ROD_LENGTH * jnp.cos(theta)
    image = _canvas(size, BACKGROUND)
    rod = _near_segment(px, py, centre, centre, tip_x, tip_y, size * PENDULUM_ROD_HALF_THICKNESS)
    image = _paint(image, rod, ROD)
    pivot_radius = size * PENDULUM_PIVOT_RADIUS
    pivot = (px - centre) ** 2 + (py - centre) ** 2 <= pivot_radius * pivot_radius
    return _paint(image, pivot, PIVOT)


def _render_maze(state: MazeState, params, size: int) -> Array:
    height, width = params.walls.shape[-2:]
    # Integer cell of each pixel: exact, and every cell gets size // H or size // H + 1 rows.
    rows = (jnp.arange(size, dtype=jnp.int32) * height) // size
    cols = (jnp.arange(size, dtype=jnp.int32) * width) // size
    cells = rows[:, None] * width + cols[None, :]
    walls = params.walls[wall_phase(params, state.total_steps)]
    image = _canvas(size, FREE)
    image = _paint(image, walls[rows[:, None], cols[None, :]], WALL)
    image = _paint(image, cells == params.goal, GOAL)
    return _paint(image, cells == state.position, AGENT)


_RENDERERS = {"cartpole": _render_cartpole, "pendulum": _render_pendulum, "maze": _render_maze}


def render(kind: str, state, params, size: int = 64) -> Array:
    """Draws one environment state.

    Args:
      kind: ``"cartpole"``, ``"pendulum"`` or ``"maze"`` (see :func:`kind_of`).
      state: the environment's state (one env, no batch axis; vmap for a batch).
      params: the environment's params (``x_threshold`` for the cart-pole, the
        layout for a maze; unused for the pendulum).
      size: image side in pixels, an integer in ``[16, 256]``.

    Returns:
      ``[size, size, 3]`` uint8 RGB image, row 0 at the top.
    """
    if kind not in _RENDERERS:
        raise ValueError(f"render: kind must be one of {KINDS}, got {kind!r}")
    return _RENDERERS[kind](state, params, check_size(size, "render"))


def to_grayscale(image: Array) -> Array:
    """``[..., 3]`` uint8 RGB to ``[..., 1]`` uint8 luma (ITU-R 601 weights, integer maths)."""
    rgb = image.astype(jnp.int32)
    luma = (77 * rgb[..., 0] + 150 * rgb[..., 1] + 29 * rgb[..., 2] + 128) >> 8
    return luma.astype(jnp.uint8)[..., None]


class PixelObservation:
    """Wraps an environment so that its observations are images of its state.

    Observations are ``[size, size, 3]`` uint8 (``[size, size, 1]`` with
    ``grayscale``); ``reset``/``step`` keep gymnax's signatures, the state,
    rewards, ``terminated`` and ``truncated`` are the inner environment's, and
    ``info["final_observation"]`` is the image of the state before auto-reset.
    Other attributes (``action_space``, ``default_params``, ``name``, ...) are
    the inner environment's.
    """

    def __init__(self, env, size: int = 64, grayscale: bool = False):
        self._env = env
        self.size = check_size(size)
        try:
            self.kind = kind_of(env)
        except ValueError as error:
            raise ValueError(f"PixelObservation: {error}") from None
        if not isinstance(grayscale, bool):
            raise ValueError(f"PixelObservation: grayscale must be a bool, got {grayscale!r}")
        self.grayscale = grayscale

    def __getattr__(self, name):
        return getattr(self._env, name)

    def render(self, state, params=None) -> Array:
        """The observation of one state: ``[size, size, C]`` uint8."""
        params = self._env.default_params if params is None else params
        image = render(self.kind, state, params, self.size)
        return to_grayscale(image) if self.grayscale else image

    def get_obs(self, state, params=None, key=None) -> Array:
        return self.render(state, params)

    def reset(self, key, params=None):
        params = self._env.default_params if params is None else params
        _, state = self._env.reset(key, params)
        return self.render(state, params), state

    def step(self, key, state, action, params=None):
        """gymnax step with auto-reset; observations are images.

        Returns:
          ``(obs, state, reward, terminated, truncated, info)`` with ``obs`` and
          ``info["final_observation"]`` ``[size, size, C]`` uint8.
        """
        params = self._env.default_params if params is None else params
        if isinstance(self._env, GridMaze):
            # The maze's own step (no key split; total_steps survives the reset).
            # Its pre-reset state differs from the returned one only in the cell
            # (and the episode time, which the image does not show).
            _, next_state, reward, terminated, truncated, info = self._env.step(
                key, state, action, params
            )
            final_state = next_state.replace(position=info["final_observation"])
        else:
            # gymnax's Environment.step, reproduced to keep the pre-reset state.
            key_step, key_reset = jax.random.split(key)
            _, final_state, reward, terminated, info = self._env.step_env(
                key_step, state, action, params
            )
            truncated = self._env.is_truncated(final_state, params)
            done = jnp.logical_or(terminated, truncated)
            _, reset_state = self._env.reset_env(key_reset, params)
            next_state = jax.tree.map(
                lambda reset_leaf, step_leaf: jax.lax.select(done, reset_leaf, step_leaf),
                reset_state,
                final_state,
            )
            info = {**info, "terminated": terminated, "truncated": truncated}
        info = {**info, "final_observation": self.render(final_state, params)}
        return self.render(next_state, params), next_state, reward, terminated, truncated, info

    def observation_space(self, params=None) -> spaces.Box:
        channels = 1 if self.grayscale else 3
        return spaces.Box(0, 255, (self.size, self.size, channels), jnp.uint8)


__all__ = [
    "KINDS",
    "PixelObservation",
    "check_size",
    "kind_of",
    "render",
    "to_grayscale",
]
