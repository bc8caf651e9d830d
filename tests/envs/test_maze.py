import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_jax import envs
from mbrl_jax.envs import layouts
from tests.envs.reference_maze import ReferenceMaze

CASES = {
    "DynaMaze": (layouts.DYNA_MAZE, None, None, 0.0, {}),
    "GridWorld-5x5": (layouts.GRID_WORLD_5X5, None, None, -0.01, {}),
    # Short episodes so truncation is exercised many times.
    "BlockingMaze": (
        layouts.BLOCKING_MAZE,
        layouts.BLOCKING_MAZE_AFTER,
        1000,
        0.0,
        {"max_steps_in_episode": 37},
    ),
    "ShortcutMaze": (
        layouts.SHORTCUT_MAZE,
        layouts.SHORTCUT_MAZE_AFTER,
        1500,
        0.0,
        {"change_step": 1500, "max_steps_in_episode": 53},
    ),
}


def run_env(env, params, actions, key):
    obs, state = env.reset(key, params)

    def body(carry, inputs):
        state = carry
        action, k = inputs
        obs, state, reward, terminated, truncated, info = env.step(k, state, action, params)
        return state, (obs, reward, terminated, truncated, info["wall_phase"], state.total_steps)

    keys = jax.random.split(key, len(actions))
    _, out = jax.lax.scan(body, state, (jnp.asarray(actions), keys))
    return obs, out


@pytest.mark.parametrize("name", list(CASES))
def test_maze_matches_python_reference(name):
    layout, after, change, step_reward, overrides = CASES[name]
    env, params = envs.make(name, **overrides)
    max_steps = int(params.max_steps_in_episode)
    rng = np.random.default_rng(0)
    num_steps = 3000
    # Biased towards up/right so that the goal is reached and episodes end.
    actions = rng.choice(4, size=num_steps, p=[0.35, 0.15, 0.15, 0.35])
    obs0, (obs, reward, terminated, truncated, phase, total) = jax.jit(run_env, static_argnums=0)(
        env, params, actions, jax.random.key(1)
    )
    ref = ReferenceMaze(layout, after, change, step_reward, 1.0, max_steps)
    assert int(obs0) == ref.index
    for t, a in enumerate(actions):
        r_obs, r_rew, r_term, r_trunc = ref.step(int(a))
        assert int(obs[t]) == r_obs, f"step {t}"
        assert float(reward[t]) == pytest.approx(r_rew), f"step {t}"
        assert bool(terminated[t]) == r_term, f"step {t}"
        assert bool(truncated[t]) == r_trunc, f"step {t}"
        assert int(total[t]) == t + 1
    assert int(np.sum(terminated)) > 3, "the sequence should reach the goal several times"
    if change is not None:
        np.testing.assert_array_equal(np.asarray(phase), (np.arange(num_steps) >= change))
    if "max_steps_in_episode" in overrides:
        assert int(np.sum(truncated)) > 3


def test_blocking_wall_change_blocks_old_path():
    env, params = envs.make("BlockingMaze", change_step=5)
    # From the start (5, 3): up twice reaches row 3 only through the gap at column 8.
    mdp0 = envs.to_tabular(env, params, phase=0)
    mdp1 = envs.to_tabular(env, params, phase=1)
    cell = lambda r, c: r * 9 + c  # noqa: E731
    up = 0
    assert int(jnp.argmax(mdp0.transition[cell(4, 8), up])) == cell(3, 8)
    assert int(jnp.argmax(mdp1.transition[cell(4, 8), up])) == cell(4, 8)
    assert int(jnp.argmax(mdp1.transition[cell(4, 0), up])) == cell(3, 0)


def test_slip_probability_frequency():
    env, params = envs.make("GridWorld-5x5", slip_prob=0.4)
    _, state = env.reset(jax.random.key(0), params)
    # From the centre, "right" moves right unless it slips to one of the other three moves.
    state = state.replace(position=jnp.int32(12))
    keys = jax.random.split(jax.random.key(3), 20_000)
    obs = jax.vmap(lambda k: env.step(k, state, 3, params)[0])(keys)
    moved_right = float(jnp.mean(obs == 13))
    assert moved_right == pytest.approx(0.6 + 0.4 / 4, abs=0.015)
    for other in (7, 17, 11):
        assert float(jnp.mean(obs == other)) == pytest.approx(0.1, abs=0.01)


def test_to_tabular_agrees_with_step():
    env, params = envs.make("DynaMaze", slip_prob=0.0)
    mdp = envs.to_tabular(env, params)
    _, state = env.reset(jax.random.key(0), params)
    free = np.flatnonzero(~np.asarray(params.walls[0]).reshape(-1))
    free = free[free != int(params.goal)]

    def next_of(s, a):
        obs, _, reward, terminated, _, info = env.step(
            jax.random.key(0), state.replace(position=s), a, params
        )
        return info["final_observation"], reward

    s_grid, a_grid = np.meshgrid(free, np.arange(4), indexing="ij")
    nxt, rew = jax.vmap(next_of)(jnp.asarray(s_grid.ravel()), jnp.asarray(a_grid.ravel()))
    expected_next = jnp.argmax(mdp.transition[s_grid.ravel(), a_grid.ravel()], axis=-1)
    np.testing.assert_array_equal(np.asarray(nxt), np.asarray(expected_next))
    np.testing.assert_allclose(
        np.asarray(rew), np.asarray(mdp.reward[s_grid.ravel(), a_grid.ravel()])
    )
    sparse = envs.to_tabular(env, params, sparse=True)
    assert sparse.next_state.shape == (54, 4, 5)
    from mbrl_jax.core.mdp import densify

    np.testing.assert_array_equal(
        np.asarray(densify(sparse).transition), np.asarray(mdp.transition)
    )


def test_to_tabular_rows_sum_to_one_with_slip():
    env, params = envs.make("DynaMaze", slip_prob=0.2)
    mdp = envs.to_tabular(env, params)
    np.testing.assert_allclose(np.asarray(mdp.transition.sum(-1)), 1.0, atol=1e-6)


def test_jit_and_vmap_over_keys_and_params():
    env, params = envs.make("DynaMaze")
    keys = jax.random.split(jax.random.key(0), 8)
    obs, states = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, params)
    assert obs.shape == (8,)
    actions = jnp.full((8,), 3)
    out = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))(keys, states, actions, params)
    assert out[0].shape == (8,)
    # A batch of mazes: the same layout with different starts.
    batch = jax.tree.map(lambda x: jnp.stack([x, x]), params)
    batch = batch.replace(start=jnp.array([18, 0], jnp.int32))
    obs, states = jax.vmap(env.reset)(keys[:2], batch)
    np.testing.assert_array_equal(np.asarray(obs), [18, 0])
    obs, *_ = jax.vmap(env.step)(keys[:2], states, jnp.array([0, 3]), batch)
    np.testing.assert_array_equal(np.asarray(obs), [9, 1])
    mdps = jax.vmap(lambda p: envs.to_tabular(env, p))(batch)
    assert mdps.transition.shape == (2, 54, 4, 54)


def test_step_does_not_recompile():
    env, params = envs.make("DynaMaze")
    step = jax.jit(env.step)
    obs, state = env.reset(jax.random.key(0), params)
    for i in range(3):
        obs, state, *_ = step(jax.random.key(i), state, jnp.int32(i % 4), params)
    other = params.replace(start=jnp.int32(0), slip_prob=jnp.float32(0.3))
    step(jax.random.key(9), state, jnp.int32(1), other)
    assert step._cache_size() == 1


def test_vector_observation_wrapper():
    env, params = envs.make("DynaMaze")
    wrapped = envs.VectorObservation(env, "one_hot")
    obs, state = wrapped.reset(jax.random.key(0), params)
    assert obs.shape == (54,) and float(obs[18]) == 1.0
    coords = envs.VectorObservation(env, "coords")
    obs, state = coords.reset(jax.random.key(0), params)
    np.testing.assert_allclose(np.asarray(obs), [2 / 5, 0.0])
    obs, *_ = coords.step(jax.random.key(0), state, 3, params)
    np.testing.assert_allclose(np.asarray(obs), [2 / 5, 1 / 8])
    with pytest.raises(ValueError, match="mode"):
        envs.VectorObservation(env, "pixels")


def test_scale_layout():
    big = envs.scale_layout(layouts.DYNA_MAZE, 2)
    assert len(big) == 12 and len(big[0]) == 18
    walls, start, goal = envs.parse_layout(big)
    assert walls.sum() == 4 * 7
    assert divmod(start, 18) == (4, 0) and divmod(goal, 18) == (0, 16)


def test_render_ascii_and_plot(tmp_path):
    env, params = envs.make("DynaMaze")
    text = envs.render_ascii(params, position=19)
    assert text.splitlines()[2] == "SA#....#."
    fig = envs.plot_maze(params, values=jnp.arange(54.0), policy=jnp.zeros(54, jnp.int32))
    fig.savefig(tmp_path / "maze.png")
    assert (tmp_path / "maze.png").stat().st_size > 1000


def test_gymnax_passthrough():
    env, params = envs.make("CartPole-v1")
    obs, state = env.reset(jax.random.key(0), params)
    assert obs.shape == (4,)
    env, params = envs.make("CartPole-v1", max_steps_in_episode=10)
    assert int(params.max_steps_in_episode) == 10


@pytest.mark.parametrize(
    "layout, message",
    [
        ((".....", "...G."), "no start"),
        (("S....", "....."), "no goal"),
        (("S...", "...G."), "ragged"),
        (("S..x", "...G"), "unknown character"),
        (("S.S.", "...G"), "exactly one"),
        ((), "empty"),
    ],
)
def test_malformed_layouts(layout, message):
    with pytest.raises(ValueError, match=message):
        envs.make_maze_params(layout)


def test_bad_names_and_overrides():
    with pytest.raises(ValueError, match="available: GridWorld-5x5, DynaMaze"):
        envs.make("NoSuchMaze")
    with pytest.raises(ValueError, match="unknown parameter"):
        envs.make("DynaMaze", wall_colour=3)
    with pytest.raises(ValueError, match="slip_prob"):
        envs.make("DynaMaze", slip_prob=1.5)
    with pytest.raises(ValueError, match="max_steps_in_episode"):
        envs.make("DynaMaze", max_steps_in_episode=0)
    with pytest.raises(ValueError, match="change_step is required"):
        envs.make_maze_params(layouts.BLOCKING_MAZE, layouts.BLOCKING_MAZE_AFTER)
    with pytest.raises(ValueError, match="phase"):
        env, params = envs.make("DynaMaze")
        envs.to_tabular(env, params, phase=2)
