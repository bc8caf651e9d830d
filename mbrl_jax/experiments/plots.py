"""Learning-curve figures of a comparison's ``results.json`` dictionary."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["mean_band", "plot_curves"]


def mean_band(rows: list[list[float]]):
    """Mean, 95% half-width and seed count at each index, over the seeds that
    have it (every index some seed reached)."""
    if not rows or not max(map(len, rows)):
        return np.zeros(0), np.zeros(0), np.zeros(0, int)
    width = max(map(len, rows))
    mean, half, count = np.zeros(width), np.zeros(width), np.zeros(width, int)
    for i in range(width):
        values = np.array([r[i] for r in rows if len(r) > i], dtype=float)
        mean[i], count[i] = values.mean(), len(values)
        if len(values) > 1:
            half[i] = 1.96 * values.std(ddof=1) / np.sqrt(len(values))
    return mean, half, count


def plot_curves(results: dict, path: Path) -> Path:
    """Writes steps-per-episode and cumulative-reward curves (mean and 95% band) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    seeds = results["seeds"]
    fig, (ax_len, ax_cum) = plt.subplots(1, 2, figsize=(12, 4.5))
    for spec, entry in results["agents"].items():
        mean, half, count = mean_band(entry["episode_lengths"])
        if len(mean):
            # Solid while at least half the seeds have the episode, dotted after,
            # with the number of seeds left marked where the curve ends.
            x = np.arange(1, len(mean) + 1)
            most = count >= 0.5 * seeds
            (line,) = ax_len.plot(x[most], mean[most], label=spec)
            color = line.get_color()
            if not most.all():
                tail = slice(max(int(most.sum()) - 1, 0), None)
                ax_len.plot(x[tail], mean[tail], ls=":", color=color)
                ax_len.annotate(f"{count[-1]}/{seeds}", (x[-1], mean[-1]), fontsize=7, color=color)
            ax_len.fill_between(x, mean - half, mean + half, color=color, alpha=0.2)
        cum = entry["cumulative_reward"]
        data = np.array(
            [[np.nan if v is None else v for v in row] for row in cum["per_seed"]], float
        )
        present = np.sum(~np.isnan(data), 0)
        keep = present > 0
        steps = np.asarray(cum["steps"])[keep]
        data, present = data[:, keep], present[keep]
        mean = np.nansum(data, 0) / present
        spread = np.sqrt(np.nansum((data - mean) ** 2, 0) / np.maximum(present - 1, 1))
        half = 1.96 * spread / np.sqrt(present)
        (line,) = ax_cum.plot(steps, mean, label=spec)
        ax_cum.fill_between(steps, mean - half, mean + half, color=line.get_color(), alpha=0.2)
    if results.get("optimal_path_length"):
        ax_len.axhline(
            results["optimal_path_length"], color="k", ls=":", lw=1, label="shortest path"
        )
    ax_len.set_yscale("log")
    ax_len.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_len.set_xlabel("episode")
    ax_len.set_ylabel("steps per episode")
    ax_len.set_title(
        f"{results['env']}: steps per episode ({seeds} seeds, 95% band; dotted: < half)"
    )
    ax_cum.set_xlabel("environment step")
    ax_cum.set_ylabel("cumulative reward")
    ax_cum.set_title("cumulative reward")
    for ax in (ax_len, ax_cum):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
