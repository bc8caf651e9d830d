"""mbrl_jax: model-based reinforcement learning in JAX, compiled end to end."""

from mbrl_jax import core, envs, models, planners
from mbrl_jax.core.jit import compiler_options, jit

__version__ = "0.1.0"
__all__ = ["compiler_options", "core", "envs", "jit", "models", "planners", "__version__"]
