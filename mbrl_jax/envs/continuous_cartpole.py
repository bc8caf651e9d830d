"""Cart-pole balancing with a continuous force, for model-predictive control.

The physics are gymnax's ``CartPole-v1`` (Euler integration, ``tau = 0.02``);
the action is a float in ``[-1, 1]`` and the force is ``action * force_mag``.
Reward 1 per step while the pole is up; the episode terminates when
``|x| > 2.4`` or ``|theta| > 12`` degrees and is truncated after
``max_steps_in_episode`` (200) steps — the set-up of mbrl-lib's PETS example.
Observation: ``[x, x_dot, theta, theta_dot]``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from mbrl_jax.core.types import Array


@struct.dataclass
class ContinuousCartPoleState(environment.EnvState):
    x: Array
    x_dot: Array
    theta: Array
    theta_dot: Array
    time: Array


@struct.dataclass
class ContinuousCartPoleParams(environment.EnvParams):
    gravity: float = 9.8
    masscart: float = 1.0
    masspole: float = 0.1
    length: float = 0.5
    force_mag: float = 10.0
    tau: float = 0.02
    theta_threshold_radians: float = 12 * 2 * jnp.pi / 360
    x_threshold: float = 2.4
    max_steps_in_episode: int = 200


def cartpole_terminated(obs: Array, params: ContinuousCartPoleParams | None = None) -> Array:
    """``[...]`` bool: the cart left the track or the pole fell (obs ``[..., 4]``)."""
    params = ContinuousCartPoleParams() if params is None else params
    x, theta = obs[..., 0], obs[..., 2]
    return (jnp.abs(x) > params.x_threshold) | (jnp.abs(theta) > params.theta_threshold_radians)


class ContinuousCartPole(
    environment.Environment[ContinuousCartPoleState, ContinuousCartPoleParams]
):
    """Continuous-action cart-pole (see module docstring)."""

    @property
    def default_params(self) -> ContinuousCartPoleParams:
        return ContinuousCartPoleParams()

    @property
    def name(self) -> str:
        return "ContinuousCartPole"

    def step_env(self, key, state, action, params):
        del key
        action = jnp.reshape(action, ())
        finite = jnp.isfinite(action)
        force = params.force_mag * jnp.clip(jnp.where(finite, action, 0.0), -1.0, 1.0)
        total_mass = params.masscart + params.masspole
        polemass_length = params.masspole * params.length
        cos, sin = jnp.cos(state.theta), jnp.sin(state.theta)
        temp = (force + polemass_length * state.theta_dot**2 * sin) / total_mass
        theta_acc = (params.gravity * sin - cos * temp) / (
            params.length * (4.0 / 3.0 - params.masspole * cos**2 / total_mass)
        )
        x_acc = temp - polemass_length * theta_acc * cos / total_mass
        next_state = ContinuousCartPoleState(
            x=state.x + params.tau * state.x_dot,
            x_dot=state.x_dot + params.tau * x_acc,
            theta=state.theta + params.tau * state.theta_dot,
            theta_dot=state.theta_dot + params.tau * theta_acc,
            time=state.time + 1,
        )
        obs = self.get_obs(next_state)
        # A NaN or inf action ends the episode with a NaN reward: the return
        # shows it instead of the pole carrying on as if pushed by nothing.
        terminated = cartpole_terminated(obs, params) | ~finite
        reward = jnp.where(finite, 1.0, jnp.nan).astype(jnp.float32)
        return obs, next_state, reward, terminated, {}

    def reset_env(self, key, params):
        init = jax.random.uniform(key, (4,), minval=-0.05, maxval=0.05)
        state = ContinuousCartPoleState(
            x=init[0], x_dot=init[1], theta=init[2], theta_dot=init[3], time=jnp.int32(0)
        )
        return self.get_obs(state), state

    def get_obs(self, state, params=None, key=None) -> Array:
        return jnp.stack([state.x, state.x_dot, state.theta, state.theta_dot]).astype(jnp.float32)

    def is_terminated(self, state, params) -> Array:
        return cartpole_terminated(self.get_obs(state), params)

    def action_space(self, params=None) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (1,), jnp.float32)

    def check_action(self, action, params=None) -> None:
        """Raises ``ValueError`` unless a concrete ``action`` is finite (for the
        Python API, outside ``jit``). Finite values outside ``[-1, 1]`` are
        clipped, as gymnax's continuous environments do; inside ``jit`` a
        non-finite action ends the episode with a NaN reward."""
        values = np.asarray(action, dtype=np.float64)
        if values.size == 0 or not np.all(np.isfinite(values)):
            raise ValueError(f"ContinuousCartPole: actions must be finite numbers, got {action!r}")

    def observation_space(self, params) -> spaces.Box:
        high = jnp.array(
            [params.x_threshold * 2, jnp.inf, params.theta_threshold_radians * 2, jnp.inf]
        )
        return spaces.Box(-high, high, (4,), jnp.float32)
