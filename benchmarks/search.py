"""Tree-search throughput: simulations per second of batched mctx search, against a Python MCTS.

Two models: a small MLP latent model (MuZero-sized: 64-unit dynamics and
prediction networks) with Gumbel MuZero search, and the true gymnax
CartPole-v1 model with classic UCB1 MCTS and one random rollout of
``ROLLOUT_DEPTH`` steps per leaf. The reference is a plain-Python MCTS written
the way tutorials write it (node objects, UCB1, random rollouts, a Python
cart-pole), timed in the same run on the same problem, so the ratio holds on
a noisy machine. A third row, UCB1 with a model and an evaluation that cost
nothing, measures mctx's own tree bookkeeping: the ceiling any model can reach
here (``ceiling_ratio_vs_python``). Prints JSON.

    python benchmarks/search.py [--quick] [--out FILE]
"""

from __future__ import annotations

import math
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from common import argument_parser, compile_and_time, emit  # noqa: E402

from mbrl_jax import envs  # noqa: E402
from mbrl_jax.core.types import Model  # noqa: E402
from mbrl_jax.models.networks import MuZeroNet  # noqa: E402
from mbrl_jax.models.true_env import env_model  # noqa: E402
from mbrl_jax.models.value_transforms import support_to_scalar  # noqa: E402
from mbrl_jax.planners.search import SearchConfig, make_search, rollout_evaluator  # noqa: E402

ROLLOUT_DEPTH = 20
DISCOUNT = 0.99


# ------------------------------------------------------------------ Python reference
def py_cartpole_step(state, action):
    """gymnax/gym CartPole-v1 dynamics in plain Python: ``(next_state, reward, done)``."""
    x, x_dot, theta, theta_dot = state
    force = 10.0 if action == 1 else -10.0
    cos, sin = math.cos(theta), math.sin(theta)
    temp = (force + 0.05 * theta_dot**2 * sin) / 1.1
    theta_acc = (9.8 * sin - cos * temp) / (0.5 * (4.0 / 3.0 - 0.1 * cos**2 / 1.1))
    x_acc = temp - 0.05 * theta_acc * cos / 1.1
    x, x_dot = x + 0.02 * x_dot, x_dot + 0.02 * x_acc
    theta, theta_dot = theta + 0.02 * theta_dot, theta_dot + 0.02 * theta_acc
    done = abs(x) > 2.4 or abs(theta) > 0.2095
    return (x, x_dot, theta, theta_dot), 1.0, done


class Node:
    __slots__ = ("state", "done", "reward", "children", "visits", "value_sum")

    def __init__(self, state, reward=0.0, done=False):
        self.state, self.reward, self.done = state, reward, done
        self.children = {}
        self.visits = 0
        self.value_sum = 0.0


def py_mcts(root_state, num_simulations, rng, c=1.4142135):
    """Classic MCTS: UCB1 selection, one expansion, a random rollout, backup."""
    root = Node(root_state)
    for _ in range(num_simulations):
        node, path = root, [root]
        while not node.done and len(node.children) == 2:
            parent = node
            node = max(
                node.children.values(),
                key=lambda ch, parent=parent: (
                    (ch.reward + DISCOUNT * ch.value_sum / ch.visits)
                    + c * math.sqrt(math.log(parent.visits) / ch.visits)
                ),
            )
            path.append(node)
        if not node.done:
            action = rng.choice([a for a in (0, 1) if a not in node.children])
            state, reward, done = py_cartpole_step(node.state, action)
            node.children[action] = child = Node(state, reward, done)
            path.append(child)
            node = child
        value, scale, state, done = 0.0, 1.0, node.state, node.done
        for _ in range(ROLLOUT_DEPTH):
            if done:
                break
            state, reward, done = py_cartpole_step(state, rng.randrange(2))
            value += scale * reward
            scale *= DISCOUNT
        for n in reversed(path):
            n.visits += 1
            n.value_sum += value
            value = n.reward + DISCOUNT * value
    return max(root.children, key=lambda a: root.children[a].visits)


def python_rate(num_simulations: int, seconds: float) -> dict:
    rng = random.Random(0)
    state = (0.01, -0.02, 0.03, 0.01)
    start, searches = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        py_mcts(state, num_simulations, rng)
        searches += 1
    elapsed = time.perf_counter() - start
    return {"simulations": num_simulations, "sims_per_s": searches * num_simulations / elapsed}


# ------------------------------------------------------------------ JAX search
def cartpole_search(num_simulations: int):
    env, params = envs.make("CartPole-v1")
    model = env_model(env, params)
    evaluate = rollout_evaluator(model, 2, num_rollouts=1, depth=ROLLOUT_DEPTH, discount=DISCOUNT)
    config = SearchConfig(num_simulations=num_simulations, policy="ucb1", discount=DISCOUNT)
    search = make_search(config, model, evaluate, 2)
    return (
        search,
        None,
        lambda b: jax.vmap(env.reset, in_axes=(0, None))(
            jax.random.split(jax.random.key(0), b), params
        )[1],
    )


def mlp_search(num_simulations: int):
    net = MuZeroNet(num_actions=2, latent_size=64, hidden=(64,))
    params = net.init(jax.random.key(0), jnp.zeros((1, 4)), jnp.zeros(1, jnp.int32))

    def step(p, key, latent, action):
        nxt, reward_logits = net.apply(p, latent, action, method=MuZeroNet.dynamics)
        return nxt, support_to_scalar(reward_logits, 5), jnp.bool_(False)

    def evaluate(p, key, latents):
        logits, value_logits = net.apply(p, latents, method=MuZeroNet.predict)
        return logits, support_to_scalar(value_logits, 10)

    config = SearchConfig(num_simulations=num_simulations, policy="gumbel", discount=DISCOUNT)
    search = make_search(config, Model(init=lambda key: params, step=step), evaluate, 2)
    return search, params, lambda b: jax.random.uniform(jax.random.key(1), (b, 64))


def null_search(num_simulations: int):
    """UCB1 search with a model and an evaluation that cost nothing: what is left
    is mctx's own tree bookkeeping, the ceiling of any model on this machine."""

    def step(p, key, state, action):
        return state, jnp.float32(0.0), jnp.bool_(False)

    def evaluate(p, key, states):
        return jnp.zeros((states.shape[0], 2)), jnp.zeros(states.shape[0])

    config = SearchConfig(num_simulations=num_simulations, policy="ucb1", discount=DISCOUNT)
    search = make_search(config, Model(init=lambda key: None, step=step), evaluate, 2)
    return search, None, lambda b: jnp.zeros((b, 4))


def jax_rate(builder, batch: int, num_simulations: int, quick: bool) -> dict:
    search, params, roots = builder(num_simulations)
    states = roots(batch)
    timing = compile_and_time(
        lambda key, s: search(params, params, key, s).action,
        jax.random.key(0),
        states,
        repeats=2 if quick else 3,
        min_seconds=0.1 if quick else 0.3,
    )
    return {
        "roots": batch,
        "simulations": num_simulations,
        "sims_per_s": batch * num_simulations / timing["run_s"],
        "sims_per_s_median": batch * num_simulations / timing["run_s_median"],
        "compile_s": timing["compile_s"],
        "ms_per_search": 1e3 * timing["run_s"],
    }


def main() -> None:
    parser = argument_parser(__doc__)
    args = parser.parse_args()
    batches = [1, 64] if args.quick else [1, 64, 1024]
    sims = [16] if args.quick else [16, 64, 200]
    results = {"benchmark": "search", "quick": args.quick, "rollout_depth": ROLLOUT_DEPTH}
    results["python_mcts_cartpole"] = [python_rate(s, 0.5 if args.quick else 2.0) for s in sims]
    print(f"python {results['python_mcts_cartpole']}", file=sys.stderr)
    for name, builder in (("ucb1_true_cartpole", cartpole_search), ("gumbel_mlp", mlp_search)):
        rows = []
        for s in sims:
            for b in batches:
                rows.append(jax_rate(builder, b, s, args.quick))
                print(f"{name} {rows[-1]}", file=sys.stderr)
        results[name] = rows
    rows = [jax_rate(null_search, batches[-1], s, args.quick) for s in sims]
    print(f"ucb1_null_model {rows}", file=sys.stderr)
    results["ucb1_null_model"] = rows
    reference = {r["simulations"]: r["sims_per_s"] for r in results["python_mcts_cartpole"]}
    for name in ("ucb1_true_cartpole", "ucb1_null_model"):
        key = "ratio_vs_python" if name == "ucb1_true_cartpole" else "ceiling_ratio_vs_python"
        results[key] = {
            f"{r['roots']} roots, {r['simulations']} sims": r["sims_per_s"]
            / reference[r["simulations"]]
            for r in results[name]
        }
    emit(results, args.out)


if __name__ == "__main__":
    main()
