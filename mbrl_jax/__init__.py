"""mbrl_jax: model-based reinforcement learning in JAX, compiled end to end."""

from mbrl_jax import envs, models, planners, types
from mbrl_jax.compilation import compiler_options, jit

__version__ = "0.1.0"
__all__ = ["compiler_options", "envs", "jit", "models", "planners", "types", "__version__"]
