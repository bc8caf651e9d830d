"""mbrl_jax: model-based reinforcement learning in JAX, compiled end to end.

Subpackages load on first use (``mbrl_jax.envs``, ``mbrl_jax.models``, ...), so
``import mbrl_jax`` -- and ``mbrl_jax.core`` -- start no XLA backend: a
multi-process run can call
:func:`mbrl_jax.core.sharding.initialize_distributed` first.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"
_SUBPACKAGES = ("agents", "core", "diagnostics", "envs", "experiments", "models", "planners")
__all__ = ["compiler_options", "jit", "__version__", *_SUBPACKAGES]


def __getattr__(name: str):
    if name in ("jit", "compiler_options"):
        return getattr(importlib.import_module("mbrl_jax.core.jit"), name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"mbrl_jax.{name}")
    raise AttributeError(f"module 'mbrl_jax' has no attribute {name!r}")
