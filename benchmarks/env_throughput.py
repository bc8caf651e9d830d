"""Environment throughput: our maze vs gymnax CartPole vs plain Python/NumPy mazes.

Prints JSON. Steps per second for 1, 64, 1024 and 16384 environments vmapped
inside one jitted ``lax.scan`` (random actions, auto-reset, a PRNG key per
environment per step), the same for gymnax CartPole-v1, and, in the same run,
a plain-Python maze (one environment, a Python loop, the way tutorials write
it) and a NumPy maze vectorised over the batch. Then value iteration on a
scaled Dyna maze with more than 10,000 states, JAX against NumPy.

    python benchmarks/env_throughput.py [--quick] [--out benchmarks/results/env_cpu.json]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from common import argument_parser, compile_and_time, emit, time_python  # noqa: E402

from mbrl_jax import envs, planners  # noqa: E402
from mbrl_jax.envs import layouts  # noqa: E402

MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))


def random_actions(key, num_envs: int, num_actions: int):
    """``[num_envs]`` uniform actions; for 2 or 4 actions, 16 of them per 32 random bits."""
    if num_actions not in (2, 4):
        return jax.random.randint(key, (num_envs,), 0, num_actions)
    words = jax.random.bits(key, (-(-num_envs // 16),), jnp.uint32)
    fields = (words[:, None] >> (2 * jnp.arange(16, dtype=jnp.uint32))) & 3
    return (fields.reshape(-1)[:num_envs] % num_actions).astype(jnp.int32)


def jax_rollout(env, params, num_envs: int, num_steps: int, keys: str = "counter", unroll: int = 1):
    """A function of a key that runs ``num_envs`` environments for ``num_steps`` steps.

    ``keys="split"`` gives each environment a key from ``jax.random.split`` at every
    step (one hash per environment per step); ``keys="counter"`` gives it
    ``jax.random.key(step * num_envs + env)``, distinct seeds that cost no hashing.
    """
    num_actions = env.action_space(params).n
    env_index = jnp.arange(num_envs, dtype=jnp.uint32)

    def run(key):
        reset_keys = jax.random.split(key, num_envs)
        _, states = jax.vmap(env.reset, in_axes=(0, None))(reset_keys, params)

        def body(carry, t):
            states, total = carry
            step_key = jax.random.fold_in(key, t)
            actions = random_actions(step_key, num_envs, num_actions)
            if keys == "split":
                env_keys = jax.random.split(jax.random.fold_in(step_key, 1), num_envs)
            else:
                env_keys = jax.vmap(jax.random.key)(t.astype(jnp.uint32) * num_envs + env_index)
            _, states, reward, *_ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                env_keys, states, actions, params
            )
            return (states, total + jnp.sum(reward)), None

        (_, total), _ = jax.lax.scan(
            body, (states, jnp.float32(0)), jnp.arange(num_steps), unroll=unroll
        )
        return total

    return run


def python_maze_steps(layout, num_steps: int, seed: int = 0) -> int:
    """Plain Python: one maze, list-of-strings layout, a loop with ``random``."""
    import random

    rng = random.Random(seed)
    height, width = len(layout), len(layout[0])
    start = next((r, c) for r in range(height) for c in range(width) if layout[r][c] == "S")
    goal = next((r, c) for r in range(height) for c in range(width) if layout[r][c] == "G")
    pos, episodes = start, 0
    for _ in range(num_steps):
        dr, dc = MOVES[rng.randrange(4)]
        r, c = pos[0] + dr, pos[1] + dc
        if 0 <= r < height and 0 <= c < width and layout[r][c] != "#":
            pos = (r, c)
        if pos == goal:
            pos, episodes = start, episodes + 1
    return episodes


def numpy_maze_steps(walls: np.ndarray, start: int, goal: int, num_envs: int, num_steps: int):
    """NumPy vectorised over environments: the best a careful NumPy user would write."""
    rng = np.random.default_rng(0)
    height, width = walls.shape
    deltas = np.array(MOVES)
    pos = np.full(num_envs, start)
    reward_total = 0.0
    for _ in range(num_steps):
        actions = rng.integers(0, 4, num_envs)
        row, col = pos // width + deltas[actions, 0], pos % width + deltas[actions, 1]
        inside = (row >= 0) & (row < height) & (col >= 0) & (col < width)
        row_c, col_c = np.clip(row, 0, height - 1), np.clip(col, 0, width - 1)
        free = inside & ~walls[row_c, col_c]
        pos = np.where(free, row_c * width + col_c, pos)
        reached = pos == goal
        reward_total += reached.sum()
        pos = np.where(reached, start, pos)
    return reward_total


def numpy_value_iteration(next_state, prob, reward, terminal, discount, tolerance):
    values = np.zeros(reward.shape[0], np.float32)
    iterations = 0
    while True:
        q = reward + discount * np.sum(prob * values[next_state], axis=-1)
        new = np.where(terminal, 0.0, q.max(axis=1)).astype(np.float32)
        iterations += 1
        if np.max(np.abs(new - values)) <= tolerance:
            return new, iterations
        values = new


def main() -> None:
    parser = argument_parser(__doc__)
    args = parser.parse_args()

    batch_sizes = [1, 64] if args.quick else [1, 64, 1024, 16384]
    steps_total = 20_000 if args.quick else 2_000_000  # env steps per measurement (approx.)
    maze_env, maze_params = envs.make("DynaMaze")
    cart_env, cart_params = envs.make("CartPole-v1")

    results: dict = {"benchmark": "env_throughput", "quick": args.quick, "jax": {}, "reference": {}}
    for name, env, params in (
        ("DynaMaze", maze_env, maze_params),
        ("CartPole-v1", cart_env, cart_params),
    ):
        rows = []
        for n in batch_sizes:
            num_steps = max(100, steps_total // n)
            timing = compile_and_time(jax_rollout(env, params, n, num_steps), jax.random.key(0))
            split = compile_and_time(
                jax_rollout(env, params, n, num_steps, keys="split"), jax.random.key(0)
            )
            rows.append(
                {
                    "num_envs": n,
                    "num_steps": num_steps,
                    **timing,
                    "steps_per_s": n * num_steps / timing["run_s"],
                    "steps_per_s_split_keys": n * num_steps / split["run_s"],
                }
            )
        results["jax"][name] = rows

    py_steps = 20_000 if args.quick else 300_000
    py_s = time_python(lambda: python_maze_steps(layouts.DYNA_MAZE, py_steps))
    results["reference"]["python_maze_1_env"] = {"steps_per_s": py_steps / py_s}
    walls = np.asarray(maze_params.walls[0])
    numpy_rows = []
    for n in batch_sizes:
        num_steps = max(50, (steps_total // 10) // n)
        t = time_python(
            lambda n=n, k=num_steps: numpy_maze_steps(
                walls, int(maze_params.start), int(maze_params.goal), n, k
            )
        )
        numpy_rows.append({"num_envs": n, "steps_per_s": n * num_steps / t})
    results["reference"]["numpy_maze_vectorised"] = numpy_rows

    maze_rows = {r["num_envs"]: r for r in results["jax"]["DynaMaze"]}
    cart_rows = {r["num_envs"]: r for r in results["jax"]["CartPole-v1"]}
    np_rows = {r["num_envs"]: r for r in numpy_rows}
    ratios = {}
    for n in batch_sizes:
        ratios[str(n)] = {
            "maze_vs_python": maze_rows[n]["steps_per_s"] / (py_steps / py_s),
            "maze_vs_numpy_vectorised": maze_rows[n]["steps_per_s"] / np_rows[n]["steps_per_s"],
            "maze_vs_gymnax_cartpole": maze_rows[n]["steps_per_s"] / cart_rows[n]["steps_per_s"],
        }
    results["ratios"] = ratios

    factor = 3 if args.quick else 14
    big_layout = envs.scale_layout(layouts.DYNA_MAZE, factor)
    big_params = envs.make_maze_params(big_layout)
    big_env = envs.GridMaze("ScaledDynaMaze", big_params)
    sparse = envs.to_tabular(big_env, big_params, sparse=True)
    discount, tolerance = 0.99, 1e-5
    vi = compile_and_time(
        lambda m: planners.value_iteration(
            m, discount, tolerance=tolerance, max_iterations=100_000
        ),
        sparse,
        repeats=2,
        min_seconds=0.0,
    )
    result = planners.value_iteration(sparse, discount, tolerance=tolerance, max_iterations=100_000)
    arrays = [
        np.asarray(x) for x in (sparse.next_state, sparse.prob, sparse.reward, sparse.terminal)
    ]
    np_values, np_iters = numpy_value_iteration(*arrays, discount, tolerance)
    np_s = time_python(lambda: numpy_value_iteration(*arrays, discount, tolerance), repeats=1)
    results["value_iteration_large_maze"] = {
        "num_states": int(big_params.num_states),
        "scale_factor": factor,
        "discount": discount,
        "tolerance": tolerance,
        "iterations": int(result.iterations),
        "greedy_path_length": int(planners.greedy_path_length(sparse, result.policy)),
        "jax_compile_s": vi["compile_s"],
        "jax_run_s": vi["run_s"],
        "numpy_run_s": np_s,
        "numpy_iterations": np_iters,
        "max_abs_diff_vs_numpy": float(np.max(np.abs(np.asarray(result.values) - np_values))),
        "speedup_vs_numpy": np_s / vi["run_s"],
    }
    emit(results, args.out)


if __name__ == "__main__":
    main()
