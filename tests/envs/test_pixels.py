"""Pixel observations: frames match a plain-Python rasteriser, shapes move the
right way, the wrapper keeps gymnax's contract, and bad input is refused."""

import math

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_jax import envs
from mbrl_jax.envs.layouts import make_maze_params
from mbrl_jax.envs.maze import GridMaze
from mbrl_jax.envs.pixels import PixelObservation, kind_of, render

SIZE = 48
# Colours and geometry restated here (fractions of the image size), so a change
# to the module's drawing shows up as a failing comparison.
WHITE, BLACK = (255, 255, 255), (0, 0, 0)
CART, POLE, AXLE, ROD = (40, 40, 40), (202, 152, 101), (129, 132, 203), (204, 77, 77)
WALL, GOAL, AGENT = (64, 64, 64), (0, 170, 0), (0, 0, 255)
# Pixels whose centre lies within float32 rounding of a shape's edge may differ.
MAX_BOUNDARY_PIXELS = 3


def _segment_distance(px, py, ax, ay, bx, by):
    dx, dy = bx - ax, by - ay
    t = ((px - ax) * dx + (py - ay) * dy) / max(dx * dx + dy * dy, 1e-12)
    t = min(max(t, 0.0), 1.0)
    return math.hypot(px - ax - t * dx, py - ay - t * dy)


def reference_cartpole(x, theta, size, x_threshold=2.4):
    image = np.zeros((size, size, 3), np.uint8)
    cart_x = size * (0.5 + 0.5 * x / (1.25 * x_threshold))
    track_y = 0.7 * size
    top_y = track_y - 0.04 * size
    tip_x = cart_x + 0.4 * size * math.sin(theta)
    tip_y = top_y - 0.4 * size * math.cos(theta)
    for row in range(size):
        for col in range(size):
            px, py = col + 0.5, row + 0.5
            colour = WHITE
            if abs(py - track_y) <= 0.01 * size:
                colour = BLACK
            if abs(px - cart_x) <= 0.08 * size and abs(py - track_y) <= 0.04 * size:
                colour = CART
            if _segment_distance(px, py, cart_x, top_y, tip_x, tip_y) <= 0.03 * size:
                colour = POLE
            if math.hypot(px - cart_x, py - top_y) <= 0.02 * size:
                colour = AXLE
            image[row, col] = colour
    return image


def reference_pendulum(theta, size):
    image = np.zeros((size, size, 3), np.uint8)
    centre = size / 2
    tip_x = centre - 0.38 * size * math.sin(theta)
    tip_y = centre - 0.38 * size * math.cos(theta)
    for row in range(size):
        for col in range(size):
            px, py = col + 0.5, row + 0.5
            colour = WHITE
            if _segment_distance(px, py, centre, centre, tip_x, tip_y) <= 0.05 * size:
                colour = ROD
            if math.hypot(px - centre, py - centre) <= 0.06 * size:
                colour = BLACK
            image[row, col] = colour
    return image


def _mismatched_pixels(image, reference):
    return int(np.any(np.asarray(image) != reference, axis=-1).sum())


def _centroid(image, colour):
    rows, cols = np.nonzero(np.all(np.asarray(image) == np.asarray(colour), axis=-1))
    assert rows.size > 0, f"no pixel of colour {colour}"
    return rows.mean(), cols.mean()


@pytest.fixture(scope="module")
def cartpole():
    env, params = gymnax.make("CartPole-v1")
    _, state = env.reset(jax.random.key(0), params)
    return env, params, state


@pytest.fixture(scope="module")
def pendulum():
    env, params = gymnax.make("Pendulum-v1")
    _, state = env.reset(jax.random.key(0), params)
    return env, params, state


@pytest.fixture(scope="module")
def render_jit():
    return jax.jit(render, static_argnames=("kind", "size"))


@pytest.mark.parametrize("x, theta", [(0.0, 0.0), (1.3, 0.2), (-2.2, -0.21), (0.4, 1.4)])
def test_cartpole_frame_matches_reference(cartpole, render_jit, x, theta):
    _, params, state = cartpole
    state = state.replace(x=jnp.float32(x), theta=jnp.float32(theta))
    image = render_jit("cartpole", state, params, SIZE)
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == jnp.uint8
    reference = reference_cartpole(float(np.float32(x)), float(np.float32(theta)), SIZE)
    assert _mismatched_pixels(image, reference) <= MAX_BOUNDARY_PIXELS


@pytest.mark.parametrize("theta", [0.0, 0.6, -2.0, math.pi])
def test_pendulum_frame_matches_reference(pendulum, render_jit, theta):
    _, params, state = pendulum
    image = render_jit("pendulum", state.replace(theta=jnp.float32(theta)), params, SIZE)
    reference = reference_pendulum(float(np.float32(theta)), SIZE)
    assert _mismatched_pixels(image, reference) <= MAX_BOUNDARY_PIXELS


def test_continuous_cartpole_renders_like_gymnax_cartpole(cartpole, render_jit):
    _, params, state = cartpole
    env = envs.ContinuousCartPole()
    _, own = env.reset(jax.random.key(0), env.default_params)
    own = own.replace(x=jnp.float32(0.7), theta=jnp.float32(-0.1))
    state = state.replace(x=jnp.float32(0.7), theta=jnp.float32(-0.1))
    np.testing.assert_array_equal(
        render_jit("cartpole", own, env.default_params, SIZE),
        render_jit("cartpole", state, params, SIZE),
    )


def test_pole_and_cart_move_the_right_way(cartpole, pendulum, render_jit):
    _, params, state = cartpole
    lean = {
        sign: _centroid(render_jit("cartpole", state.replace(theta=sign * 0.2), params, SIZE), POLE)
        for sign in (-1.0, 1.0)
    }
    assert lean[1.0][1] > lean[-1.0][1] + 2  # theta > 0 leans right
    carts = [
        _centroid(render_jit("cartpole", state.replace(x=jnp.float32(x)), params, SIZE), CART)
        for x in (-1.0, 0.0, 1.0)
    ]
    assert carts[0][1] < carts[1][1] < carts[2][1]
    _, params, state = pendulum
    rods = {
        sign: _centroid(render_jit("pendulum", state.replace(theta=sign * 0.5), params, SIZE), ROD)
        for sign in (-1.0, 1.0)
    }
    assert rods[1.0][1] < SIZE / 2 < rods[-1.0][1]  # counter-clockwise: tip to the left
    up = _centroid(render_jit("pendulum", state.replace(theta=jnp.float32(0.0)), params, SIZE), ROD)
    assert up[0] < SIZE / 2


def test_maze_blocks(render_jit):
    # 4 x 6 cells on 48 px: blocks of 12 x 8 pixels.
    params = make_maze_params(["S.#...", "..#...", "......", ".....G"])
    env = GridMaze("tiny", params)
    _, state = env.reset(jax.random.key(0), params)
    state = state.replace(position=jnp.int32(2 * 6 + 4))  # row 2, col 4
    image = np.asarray(render_jit("maze", state, params, SIZE))
    assert np.all(image[24:36, 32:40] == AGENT)
    assert np.sum(np.all(image == AGENT, axis=-1)) == 12 * 8
    assert np.all(image[36:48, 40:48] == GOAL)
    assert np.all(image[0:24, 16:24] == WALL)
    assert np.sum(np.all(image == WALL, axis=-1)) == 2 * 12 * 8
    assert np.all(image[0:12, 0:8] == WHITE)  # the start is not marked


def test_maze_walls_follow_the_phase(render_jit):
    params = make_maze_params(["S.G", "..."], layout_after_change=["S.G", "#.."], change_step=5)
    env = GridMaze("changing", params)
    _, state = env.reset(jax.random.key(0), params)
    before = np.asarray(render_jit("maze", state, params, SIZE))
    after = np.asarray(render_jit("maze", state.replace(total_steps=jnp.int32(5)), params, SIZE))
    assert not np.any(np.all(before == WALL, axis=-1))
    assert np.all(after[24:, :16] == WALL)


@pytest.mark.parametrize("name", ["CartPole-v1", "Pendulum-v1", "ContinuousCartPole", "DynaMaze"])
def test_wrapper_shapes_jit_and_vmap(name):
    env, params = envs.make(name)
    wrapper = PixelObservation(env, size=32)
    assert wrapper.name == env.name and wrapper.kind == kind_of(env)
    space = wrapper.observation_space(params)
    assert space.shape == (32, 32, 3) and space.dtype == jnp.uint8
    batched = {
        "reset": jax.vmap(wrapper.reset, in_axes=(0, None)),
        "sample": jax.vmap(wrapper.action_space(params).sample),
        "step": jax.vmap(wrapper.step, in_axes=(0, 0, 0, None)),
        "inner_step": jax.vmap(env.step, in_axes=(0, 0, 0, None)),
    }

    # One compiled program per env keeps the file fast.
    @jax.jit
    def reset_and_step(keys):
        obs, state = batched["reset"](keys, params)
        actions = batched["sample"](keys)
        wrapped = batched["step"](keys, state, actions, params)
        return obs, wrapped, batched["inner_step"](keys, state, actions, params)

    reset_obs, wrapped, inner = reset_and_step(jax.random.split(jax.random.key(0), 8))
    obs, _, reward, terminated, truncated, info = wrapped
    for image in (reset_obs, obs, info["final_observation"]):
        assert image.shape == (8, 32, 32, 3) and image.dtype == jnp.uint8
    assert reward.shape == terminated.shape == truncated.shape == (8,)
    # The same transitions as the unwrapped env: state, reward, terminated, truncated.
    for expected, got in zip(
        jax.tree.leaves(inner[1:5]), jax.tree.leaves(wrapped[1:5]), strict=True
    ):
        np.testing.assert_array_equal(expected, got)
    gray = PixelObservation(env, size=32, grayscale=True)
    assert jax.eval_shape(gray.reset, jax.random.key(0), params)[0].shape == (32, 32, 1)
    assert gray.observation_space(params).shape == (32, 32, 1)


def test_cartpole_final_observation_is_the_terminal_state(cartpole, render_jit):
    env, params, state = cartpole
    wrapper = PixelObservation(env, size=SIZE)
    # About to fall over to the right: the next step terminates.
    state = state.replace(theta=jnp.float32(0.2), theta_dot=jnp.float32(2.0))
    key = jax.random.key(3)
    obs, next_state, _, terminated, truncated, info = jax.jit(wrapper.step)(key, state, 1, params)
    assert bool(terminated) and not bool(truncated)
    _, terminal, _, _, _ = jax.jit(env.step_env)(jax.random.split(key)[0], state, 1, params)
    np.testing.assert_array_equal(
        info["final_observation"], render_jit("cartpole", terminal, params, SIZE)
    )
    np.testing.assert_array_equal(obs, render_jit("cartpole", next_state, params, SIZE))
    assert np.any(np.asarray(obs) != np.asarray(info["final_observation"]))


def test_maze_final_observation_and_truncation():
    params = make_maze_params(["S.G"], max_steps_in_episode=5)
    env = GridMaze("line", params)
    wrapper = PixelObservation(env, size=SIZE)
    step = jax.jit(wrapper.step)
    obs, state = jax.jit(wrapper.reset)(jax.random.key(0), params)
    start_image = obs
    _, state, _, terminated, _, _ = step(jax.random.key(1), state, 3, params)
    assert not bool(terminated)
    obs, state, _, terminated, _, info = step(jax.random.key(2), state, 3, params)
    assert bool(terminated)
    final = np.asarray(info["final_observation"])
    assert np.all(final[:, 32:] == AGENT)  # the agent on the goal cell
    np.testing.assert_array_equal(obs, start_image)
    # Truncation is the maze's own: five steps bumping into the left edge.
    truncated = []
    for i in range(5):
        _, state, _, _, trunc, _ = step(jax.random.key(10 + i), state, 2, params)
        truncated.append(bool(trunc))
    assert truncated == [False] * 4 + [True]


def test_step_does_not_recompile(cartpole):
    env, params, state = cartpole
    traces = []

    def traced_step(key, state, action):
        traces.append(1)
        return PixelObservation(env, size=16).step(key, state, action, params)

    step = jax.jit(traced_step)
    for i in range(3):
        _, state, *_ = step(jax.random.key(i), state, jnp.int32(i % 2))
    assert len(traces) == 1


@pytest.mark.parametrize("size", [8, 300, 64.0, True])
def test_bad_size_is_refused(cartpole, size):
    env, _, _ = cartpole
    with pytest.raises(
        ValueError, match=r"PixelObservation: size must be an integer in \[16, 256\]"
    ):
        PixelObservation(env, size=size)


def test_unsupported_env_and_kind_are_refused(cartpole):
    env, _ = gymnax.make("Acrobot-v1")
    with pytest.raises(ValueError, match="env 'Acrobot-v1' has no pixel renderer; supported:"):
        PixelObservation(env)
    with pytest.raises(ValueError, match="Acrobot-v1"):
        kind_of(env)
    _, params, state = cartpole
    with pytest.raises(ValueError, match="kind must be one of"):
        render("acrobot", state, params)
    with pytest.raises(ValueError, match="render: size must be"):
        render("cartpole", state, params, size=10)
