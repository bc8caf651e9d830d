"""Every benchmark script starts as the README runs it (``python benchmarks/NAME.py``)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py") if p.name != "common.py")


def test_every_benchmark_is_listed():
    expected = {"env_throughput.py", "dyna_throughput.py", "pets.py", "search.py", "scaling.py"}
    assert expected | {"mbpo.py", "policy_search.py", "dreamer.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_imports_and_parses_its_arguments(script, tmp_path):
    # From another working directory and without the repository on the path,
    # as a user runs it: an import that only works from the repository root fails here.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--quick" in result.stdout
