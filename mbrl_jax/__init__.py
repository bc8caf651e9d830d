"""mbrl_jax: model-based reinforcement learning in JAX, compiled end to end."""

from mbrl_jax import envs, models, planners, types

__version__ = "0.1.0"
__all__ = ["envs", "models", "planners", "types", "__version__"]
