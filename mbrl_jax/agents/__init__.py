"""Agents: ``make_train(config, env, env_params) -> train(key)``."""
