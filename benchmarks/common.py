"""Helpers shared by the benchmark scripts: timing, compile time, memory, JSON output."""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jax

from mbrl_jax.core.jit import jit


def cpu_flags() -> dict:
    """The CPU model and the vector extensions that matter to XLA's CPU code
    (read from ``/proc/cpuinfo``; empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    model, flags = "", set()
    for line in text.splitlines():
        if line.startswith("model name") and not model:
            model = line.split(":", 1)[1].strip()
        if line.startswith("flags") and not flags:
            flags = set(line.split(":", 1)[1].split())
    wanted = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16")
    return {"model": model, "vector_flags": [f for f in wanted if f in flags]}


def device_info() -> dict:
    import jaxlib

    dev = jax.devices()[0]
    return {
        "backend": jax.default_backend(),
        "device": getattr(dev, "device_kind", str(dev)),
        "num_devices": jax.device_count(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": cpu_flags(),
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def compile_and_time(fn: Callable, *args, repeats: int = 3, min_seconds: float = 0.2) -> dict:
    """Compiles ``mbrl_jax.jit(fn)`` for ``args``, then times ``repeats`` runs.

    ``mbrl_jax.jit`` is ``jax.jit`` with the library's compiler options, so
    the figures are what users of the library get.

    Each run calls the compiled function until ``min_seconds`` have passed. This
    machine's timings swing by up to 2x from call to call, so both the best and
    the median per-call time are returned; throughput figures use the best.

    Returns:
      ``{"compile_s", "run_s" (best), "run_s_median"}``.
    """
    jitted = jit(fn)
    start = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    compile_s = time.perf_counter() - start
    return {"compile_s": compile_s, **_time_compiled(compiled, args, repeats, min_seconds)}


def compile_and_time_sharded(
    train: Callable, keys, repeats: int = 3, min_seconds: float = 0.2, devices="all"
) -> dict:
    """:func:`compile_and_time` for ``jit(vmap(train))`` over ``keys`` sharded along
    the seed axis of every device (:func:`mbrl_jax.core.sharding.make_sharded`).

    Returns:
      ``{"compile_s", "run_s", "run_s_median", "devices"}``.
    """
    from mbrl_jax.core.sharding import device_mesh, make_sharded

    sharded = make_sharded(train, device_mesh(devices))
    inputs, _ = sharded.inputs(keys)
    start = time.perf_counter()
    compiled = sharded.compiled.lower(*inputs).compile()
    compile_s = time.perf_counter() - start
    timing = _time_compiled(compiled, inputs, repeats, min_seconds)
    return {"compile_s": compile_s, **timing, "devices": sharded.num_devices}


def _time_compiled(compiled, args, repeats: int, min_seconds: float) -> dict:
    jax.block_until_ready(compiled(*args))  # warm-up
    per_call = []
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while True:
            jax.block_until_ready(compiled(*args))
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        per_call.append(elapsed / calls)
    per_call.sort()
    return {"run_s": per_call[0], "run_s_median": per_call[len(per_call) // 2]}


def time_python(fn: Callable, repeats: int = 3) -> float:
    """Best wall-clock seconds of ``repeats`` calls of a plain Python function."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def emit(result: dict, out: str | None) -> None:
    """Prints ``result`` as JSON and writes it to ``out`` if given."""
    result = {"device": device_info(), "peak_rss_mb": peak_rss_mb(), **result}
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n")
    sys.stdout.flush()


def argument_parser(doc: str) -> argparse.ArgumentParser:
    """The options every benchmark script takes: ``--quick`` (small sizes, a smoke
    run) and ``--out FILE`` (also write the JSON there); ``doc``'s first line
    describes the script."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    return parser
