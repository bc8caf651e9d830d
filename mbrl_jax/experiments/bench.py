"""``mbrl-jax bench NAME``: the benchmark scripts of a source checkout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def benchmarks_dir() -> Path:
    """``benchmarks/`` beside the package (present in a source checkout)."""
    return Path(__file__).resolve().parent.parent.parent / "benchmarks"


def benchmark_names() -> list[str]:
    """The benchmark scripts' names, ``[]`` outside a source checkout."""
    folder = benchmarks_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.py") if p.stem != "common")


def run_benchmark(name: str, full: bool = False, out: str | None = None) -> int:
    """Runs ``benchmarks/NAME.py`` (with ``--quick`` unless ``full``); its exit code.

    Raises:
      ValueError: no benchmarks here, or an unknown name (the line lists them).
    """
    names = benchmark_names()
    if not names:
        raise ValueError(
            f"no benchmarks at {benchmarks_dir()}: they run from a source checkout "
            "(git clone, then pip install -e .)"
        )
    if name not in names:
        raise ValueError(f"unknown benchmark {name!r}; valid: {', '.join(names)}")
    command = [sys.executable, str(benchmarks_dir() / f"{name}.py")]
    if not full:
        command.append("--quick")
    if out:
        command += ["--out", out]
    return subprocess.run(command).returncode
