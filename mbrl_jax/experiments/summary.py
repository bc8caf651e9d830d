"""What the comparison reports of each agent: per-seed episodes, the summary
numbers, the sampled cumulative reward, and the table."""

from __future__ import annotations

import numpy as np


def _episodes(done_row: np.ndarray, values_row: np.ndarray, lengths: bool) -> list:
    ends = np.flatnonzero(done_row)
    if lengths:
        return np.diff(np.concatenate([[-1], ends])).astype(int).tolist()
    sums = np.cumsum(values_row)[ends] if len(ends) else np.zeros(0)
    return np.diff(np.concatenate([[0.0], sums])).round(6).tolist()


def first_reaching(steps, values, target):
    """The first ``steps[i]`` whose ``values[i] >= target`` (``None`` values are
    skipped; ``None``: never), e.g. an evaluation curve's steps to a target return."""
    for step, value in zip(steps, values, strict=True):
        if value is not None and value >= target:
            return step
    return None


def _first_near_optimal(lengths: list, threshold: float, window: int) -> int | None:
    """Index of the last episode of the first ``window`` episodes averaging ``<= threshold``."""
    if len(lengths) < window:
        return None
    means = np.convolve(lengths, np.ones(window) / window, mode="valid")
    hits = np.flatnonzero(means <= threshold)
    return int(hits[0] + window - 1) if len(hits) else None


def summarize(extracted: dict, optimal: int | None, near_optimal: float, window: int = 5) -> dict:
    """Per-seed episode lists and the summary numbers of one agent.

    A seed is near-optimal from the first run of ``window`` consecutive episodes
    whose mean length is within ``near_optimal`` times the shortest path; the
    summary averages episodes and steps to that point over the seeds that got there.
    """
    reward, done = extracted["reward"], extracted["done"]
    seeds, num_steps = reward.shape
    lengths = [_episodes(done[i], reward[i], True) for i in range(seeds)]
    returns = [_episodes(done[i], reward[i], False) for i in range(seeds)]
    ends = [np.flatnonzero(done[i]) for i in range(seeds)]
    completed = np.array([len(x) for x in lengths])
    final_len = [np.mean(x[-10:]) for x in lengths if x]
    final_ret = [np.mean(x[-10:]) for x in returns if x]
    summary = {
        "episodes_completed": float(completed.mean()),
        "final_episode_length": float(np.mean(final_len)) if final_len else None,
        "final_episode_return": float(np.mean(final_ret)) if final_ret else None,
        "cumulative_reward": float(reward.sum(axis=1).mean()),
        "episodes_to_near_optimal": None,
        "steps_to_near_optimal": None,
        "near_optimal_threshold": None,
        "seeds_near_optimal": None,
    }
    if optimal is not None:
        threshold = near_optimal * optimal
        summary["near_optimal_threshold"] = threshold
        reached_eps, reached_steps = [], []
        for seed_lengths, seed_ends in zip(lengths, ends, strict=True):
            e = _first_near_optimal(seed_lengths, threshold, window)
            if e is not None:
                reached_eps.append(e + 1)
                reached_steps.append(seed_ends[e] + 1)
        summary["seeds_near_optimal"] = len(reached_eps)
        if reached_eps:
            summary["episodes_to_near_optimal"] = float(np.mean(reached_eps))
            summary["steps_to_near_optimal"] = float(np.mean(reached_steps))
    return {"episode_lengths": lengths, "episode_returns": returns, "summary": summary}


def stream_entry(extracted: dict, episodes, run, planned: int, seeds: int) -> dict:
    """Real steps, planning updates and the sampled cumulative reward of one agent."""
    done = extracted["done"]
    length = done.shape[1]  # agents with a budget of their own may differ from `steps`
    active = np.array([_active_steps(done[j], episodes, length) for j in range(seeds)])
    cumulative = np.cumsum(extracted["reward"], axis=1)
    sample = np.unique(np.linspace(0, length - 1, min(length, 200)).astype(int))
    return {
        # Steps counted from the metrics; agents whose metrics follow one of
        # several lockstep environments took that many steps in each.
        "real_steps": float(active.mean()) * run.parallel_envs,
        "planned_real_steps": planned,
        "planning_updates": float(np.mean(extracted["planning_updates"])),
        "cumulative_reward": {
            "steps": (sample + 1).tolist(),
            # A seed that stopped (episode budget) has no value past its
            # last active step: null, not a flat line of zero padding.
            "per_seed": [
                [
                    round(float(v), 6) if t < active[j] else None
                    for t, v in zip(sample, cumulative[j, sample], strict=True)
                ]
                for j in range(seeds)
            ],
        },
    }


def _active_steps(done_row, episodes, steps) -> int:
    if episodes is None:
        return steps
    ends = np.flatnonzero(done_row)
    return int(ends[episodes - 1] + 1) if len(ends) >= episodes else steps


def format_table(results: dict) -> str:
    """The comparison table as text."""
    columns = (
        ("agent", 26, "<"),
        ("final len", 10, ">"),
        ("final ret", 10, ">"),
        ("eval ret", 10, ">"),
        ("eval len", 10, ">"),
        ("near seeds", 11, ">"),
        ("eps->near", 10, ">"),
        ("steps->near", 12, ">"),
        ("cum. reward", 12, ">"),
        ("real steps", 11, ">"),
        ("planning", 11, ">"),
        ("compile s", 10, ">"),
        ("run s", 8, ">"),
    )
    # On a maze every episode that ends pays the same goal reward, so a final
    # return column says nothing there: the final length is the steps to goal.
    maze = results.get("optimal_path_length") is not None
    hidden = ("final ret", "eval ret") if maze else ("eval len",)
    keep = [name not in hidden for name, _, _ in columns]
    columns = tuple(c for c, k in zip(columns, keep, strict=True) if k)
    header = "".join(f"{name:{align}{width}}" for name, width, align in columns)
    lines = [
        f"{results['env']}: {results['seeds']} seeds, budget {results['budget']}, "
        f"shortest path {results['optimal_path_length']}",
        header,
        "-" * len(header),
    ]

    def cell(value, spec):
        return "-" if value is None else format(value, spec)

    for spec, entry in results["agents"].items():
        s = entry["summary"]
        near = s.get("seeds_near_optimal")
        values = (
            spec,
            cell(s["final_episode_length"], ".1f"),
            cell(s["final_episode_return"], ".3f"),
            cell(s.get("final_eval_return"), ".3f"),
            cell(s.get("final_eval_length"), ".1f"),
            "-" if near is None else f"{near}/{results['seeds']}",
            cell(s["episodes_to_near_optimal"], ".1f"),
            cell(s["steps_to_near_optimal"], ".0f"),
            f"{s['cumulative_reward']:.1f}",
            f"{entry['real_steps']:.0f}",
            f"{entry['planning_updates']:.0f}",
            f"{entry['compile_s']:.2f}",
            f"{entry['run_s']:.2f}",
        )
        values = tuple(v for v, k in zip(values, keep, strict=True) if k)
        lines.append(
            "".join(
                f"{v:{align}{width}}" for v, (_, width, align) in zip(values, columns, strict=True)
            )
        )
    threshold = next(
        (e["summary"]["near_optimal_threshold"] for e in results["agents"].values()), None
    )
    if threshold:
        lines.append(
            f"near-optimal: 5 consecutive episodes averaging <= {threshold:.1f} steps "
            "(means over the seeds that got there); final len: mean steps to the goal "
            "over the last 10 episodes; eval len: steps to the goal of the greedy policy "
            "at the end (the episode cap where it does not get there)"
        )
    notes = {e.get("eval_note") for e in results["agents"].values() if e.get("eval_note")}
    if notes and not maze:
        lines.append(
            "eval ret: mean over seeds of the evaluation return at the end "
            "(per agent: see eval_note in results.json)"
        )
    return "\n".join(lines)
