"""Exact planning in a maze against planning in a count model learned from
random transitions (the ``mbrl-jax plan`` command)."""

from __future__ import annotations

import json
from pathlib import Path

import jax

__all__ = ["plan_maze"]


def plan_maze(
    env_name: str, transitions: int, discount: float, phase: int, seed: int, out: Path
) -> dict:
    """Value iteration on the maze's true MDP and on a count model learned from
    ``transitions`` random steps; writes ``plan_<env>.png`` (values and greedy
    arrows side by side) and ``plan_<env>.json`` into ``out``.

    Returns:
      The JSON summary plus ``ascii`` (the maze with the exact greedy policy),
      ``true_iterations`` and ``png`` (the figure's path).

    Raises:
      ValueError: ``env_name`` is not a maze.
    """
    from mbrl_jax import envs, models, planners
    from mbrl_jax.experiments.collect import random_transitions

    if env_name not in envs.maze_names():
        raise ValueError(
            f"plan needs a maze; got {env_name!r}, choose from {', '.join(envs.maze_names())}"
        )
    env, params = envs.make(env_name)
    true_mdp = envs.to_tabular(env, params, phase=phase)
    exact = jax.jit(planners.value_iteration)(true_mdp, discount)
    exact_len = int(planners.greedy_path_length(true_mdp, exact.policy))

    @jax.jit
    def learn(key):
        data = random_transitions(key, env, params, transitions)
        model = models.count_model_init(params.num_states, env.num_actions)
        model = models.count_model_update(model, data)
        mdp = models.count_model_mdp(model).replace(start=params.start)
        result = planners.value_iteration(mdp, discount)
        return result, planners.greedy_path_length(true_mdp, result.policy)

    learned, learned_len = learn(jax.random.key(seed))
    learned_len = int(learned_len)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, 2, figsize=(2 * max(4.0, 0.6 * params.width), max(3.0, 0.6 * params.height))
    )
    envs.plot_maze(
        params, exact.values, exact.policy, phase, ax=axes[0], title=f"true MDP: path {exact_len}"
    )
    envs.plot_maze(
        params,
        learned.values,
        learned.policy,
        phase,
        ax=axes[1],
        title=f"count model ({transitions} steps): path {learned_len}",
    )
    fig.tight_layout()
    png = Path(out) / f"plan_{env_name}.png"
    fig.savefig(png, dpi=120)
    plt.close(fig)
    summary = {
        "env": env_name,
        "true_path_length": exact_len,
        "learned_path_length": learned_len,
        "transitions": transitions,
        "discount": discount,
    }
    (Path(out) / f"plan_{env_name}.json").write_text(json.dumps(summary, indent=2))
    return {
        **summary,
        "ascii": envs.render_ascii(params, phase=phase, policy=exact.policy),
        "true_iterations": int(exact.iterations),
        "png": png,
    }
