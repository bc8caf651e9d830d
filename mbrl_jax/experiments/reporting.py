"""Where a chunked run reports: a progress bar or log lines, a JSON-lines file,
TensorBoard event files; and the training returns tracked across chunks."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mbrl_jax.experiments.chunked_run import RunOptions


class Sinks:
    """Where chunk reports go: the log or a progress bar, a JSON-lines file,
    TensorBoard. One per comparison; :meth:`close` when done."""

    def __init__(self, options: RunOptions, log: Callable[[str], None]):
        self.options, self.log = options, log
        self._jsonl = None
        self._tb = None
        self._bar = None
        if options.jsonl:
            path = Path(options.jsonl)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._jsonl = open(path, "a", encoding="utf-8")  # noqa: SIM115
            except OSError as err:
                raise ValueError(f"--log-jsonl {path}: cannot write there ({err})") from None
        if options.tensorboard:
            try:
                from tensorboardX import SummaryWriter
            except ImportError:
                raise ValueError(
                    "--tensorboard needs tensorboardX: pip install tensorboardX "
                    '(or pip install -e ".[tensorboard]")'
                ) from None
            self._tb = SummaryWriter(options.tensorboard)
        if options.progress and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("steps  {task.fields[status]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._bar.start()

    def start(self, spec: str, total_steps: int, done_steps: int):
        if self._bar is not None:
            self._task = self._bar.add_task(
                spec, total=total_steps, completed=done_steps, status=""
            )

    @contextlib.contextmanager
    def compiling(self, spec: str):
        """A pulsing bar while ``spec`` compiles (on a terminal)."""
        task = None
        if self._bar is not None:
            task = self._bar.add_task(f"{spec}: compiling", total=None, status="")
        try:
            yield
        finally:
            if task is not None:
                self._bar.remove_task(task)

    def finished(self, total_steps: int):
        """The run of the last :meth:`start` ended (its remainder included)."""
        if self._bar is not None:
            self._bar.update(self._task, completed=total_steps)

    def chunk(self, record: dict):
        """One chunk's record: ``agent``, ``chunk``, ``chunks``, ``steps``,
        ``total_steps``, ``elapsed_s``, ``train_return``, ``episodes``."""
        self._write(record)
        ret = record["train_return"]
        status = f"return {ret:.3g}" if ret is not None else "no episode ended yet"
        if self._bar is not None:
            self._bar.update(self._task, completed=record["steps"], status=status)
        elif self.options.progress:
            done = record["steps"] / max(1, record["total_steps"])
            left = record["elapsed_s"] * (1 - done) / done if done > 0 else float("nan")
            self.log(
                f"  {record['agent']}: chunk {record['chunk']}/{record['chunks']}, "
                f"{record['steps']}/{record['total_steps']} steps, {status}, "
                f"{record['elapsed_s']:.1f} s, ~{left:.1f} s left"
            )
        if self._tb is not None:
            if ret is not None:
                self._tb.add_scalar(f"{record['agent']}/train_return", ret, record["steps"])
            self._tb.add_scalar(
                f"{record['agent']}/steps_per_s",
                record["steps_per_s"],
                record["steps"],
            )

    def evaluation(self, record: dict):
        """One evaluation: ``agent``, ``steps``, ``eval_return`` (mean over seeds)."""
        self._write(record)
        if self._tb is not None and record["eval_return"] is not None:
            self._tb.add_scalar(
                f"{record['agent']}/eval_return", record["eval_return"], record["steps"]
            )
        if self._bar is None and self.options.progress:
            value = record["eval_return"]
            self.log(
                f"  {record['agent']}: evaluation at {record['steps']} steps: "
                f"{'-' if value is None else format(value, '.4g')}"
            )

    def _write(self, record: dict):
        if self._jsonl is not None:
            self._jsonl.write(json.dumps(record) + "\n")
            self._jsonl.flush()

    def close(self):
        if self._bar is not None:
            self._bar.stop()
        if self._jsonl is not None:
            self._jsonl.close()
        if self._tb is not None:
            self._tb.close()


class ReturnTracker:
    """Per-seed running returns across chunks of a step stream (host side)."""

    def __init__(self, seeds: int):
        self.running = np.zeros(seeds)
        self.recent: list[list[float]] = [[] for _ in range(seeds)]
        self.episodes = 0

    def add(self, reward: np.ndarray, done: np.ndarray) -> float | None:
        """Adds ``[seeds, T]`` steps; returns the mean over seeds of each seed's
        last (up to) 10 completed episodes, ``None`` before any episode ended."""
        for i in range(reward.shape[0]):
            sums = self.running[i] + np.cumsum(reward[i], dtype=np.float64)
            ends = np.flatnonzero(done[i])
            if len(ends):
                at_end = sums[ends]  # the first includes the episode's earlier chunks
                completed = np.diff(np.concatenate([[0.0], at_end]))
                self.recent[i] = (self.recent[i] + completed.tolist())[-10:]
                self.episodes += len(ends)
                self.running[i] = sums[-1] - at_end[-1]
            else:
                self.running[i] = sums[-1] if len(sums) else self.running[i]
        means = [np.mean(x) for x in self.recent if x]
        return float(np.mean(means)) if means else None

    def to_json(self) -> dict:
        """What a checkpoint keeps of the tracker."""
        return {"running": self.running.tolist(), "recent": self.recent, "episodes": self.episodes}

    @classmethod
    def from_json(cls, saved: dict) -> ReturnTracker:
        tracker = cls(len(saved["running"]))
        tracker.running = np.asarray(saved["running"], np.float64)
        tracker.recent = [list(x) for x in saved["recent"]]
        tracker.episodes = int(saved["episodes"])
        return tracker


def mean_or_none(values) -> float | None:
    values = np.asarray(values, np.float64)
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None
