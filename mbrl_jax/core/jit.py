"""``jax.jit`` with the XLA options the library's workloads run fastest under.

On a CPU, XLA compiles matrix products to library calls and everything else
(activations, sampling, bookkeeping) to its own vectorised loops. By default
those loops use 256-bit vectors even where the CPU has 512-bit ones
(AVX-512), to avoid the clock slow-down some older chips take on wide
vectors. Dense-model planning spends about a fifth of its time in such loops
(the SiLU between layers), so the wider vectors are worth it there: on the
2-core AVX-512 machine our benchmarks run on, PETS planning at mbrl-lib's
settings runs about 10% faster, at 72% of the matrix-multiply rate
(``benchmarks/pets.py``); ensemble training is unchanged.
Where the CPU has no 512-bit vectors the option is a preference LLVM
cannot act on, so it changes nothing. Other backends get no options.

Use :func:`jit` where you would call ``jax.jit`` on a train or plan function,
or pass :func:`compiler_options` to ``jax.jit(..., compiler_options=...)``
yourself. It is a per-function option: no global flag is set.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

_CPU_OPTIONS = {"xla_cpu_prefer_vector_width": 512}


def compiler_options(backend: str | None = None) -> dict[str, Any]:
    """XLA compiler options for ``backend`` (default: JAX's default backend).

    Returns ``{"xla_cpu_prefer_vector_width": 512}`` on ``"cpu"`` and ``{}``
    elsewhere.
    """
    backend = backend or jax.default_backend()
    return dict(_CPU_OPTIONS) if backend == "cpu" else {}


def jit(fun: Callable, **jit_kwargs) -> Callable:
    """``jax.jit(fun, **jit_kwargs)`` with :func:`compiler_options` added.

    Options given in ``jit_kwargs["compiler_options"]`` take precedence.
    """
    options = compiler_options(jit_kwargs.get("backend")) | dict(
        jit_kwargs.pop("compiler_options", None) or {}
    )
    return jax.jit(fun, compiler_options=options or None, **jit_kwargs)


CACHE_DIR_ENV = "MBRL_JAX_CACHE_DIR"


def enable_compilation_cache(path: str | None = None) -> str | None:
    """Turns on JAX's persistent compilation cache, so a program compiled once
    (same code, shapes and options) loads from disk in later processes.

    Programs go into a subdirectory named by :func:`machine_tag`, so a cache
    shared between machines (a network home directory) never hands one
    machine's compiled code to another.

    Args:
      path: the cache directory; default ``$MBRL_JAX_CACHE_DIR``, else
        ``~/.cache/mbrl_jax/xla``. ``"off"`` (or ``MBRL_JAX_CACHE_DIR=off``)
        leaves the cache off.

    Returns:
      The directory in use, or ``None`` when off. The ``mbrl-jax`` command
      calls this; library code never does (it is process-wide state).
    """
    import os

    path = path if path is not None else os.environ.get(CACHE_DIR_ENV)
    if path is None:
        path = os.path.join(os.path.expanduser("~"), ".cache", "mbrl_jax", "xla")
    if path.strip().lower() in ("", "off", "0", "none"):
        return None
    path = os.path.join(path, machine_tag())
    jax.config.update("jax_compilation_cache_dir", path)
    # Cache programs that took half a second or more to compile (every
    # agent's train does); tiny helpers are not worth a file each.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    return path


def machine_tag() -> str:
    """A short name for this machine's compiled code: a hash of the CPU model and
    features (``/proc/cpuinfo`` where there is one), the architecture and the
    jaxlib version."""
    import hashlib
    import platform

    import jaxlib

    parts = [platform.machine(), platform.processor(), getattr(jaxlib, "__version__", "")]
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("model name", "flags", "Features", "CPU part")):
                    parts.append(line.strip())
                if line.strip() == "":
                    break  # the first processor describes them all
    except OSError:
        pass
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
