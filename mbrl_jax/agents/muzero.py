"""MuZero: search with a learned latent model, self-play and learning in one jitted function.

Networks (flax linen):

* representation ``obs -> latent`` (min-max normalised to ``[0, 1]``, as in MuZero),
* dynamics ``(latent, action) -> (next latent, reward logits)``,
* prediction ``latent -> (policy logits, value logits)``,

with value and reward as categorical distributions over the integer support
``[-S, S]`` of the ``h``-scaled scalar (:mod:`mbrl_jax.models.value_transforms`).

``train(key)`` is a ``lax.scan`` over iterations; each iteration

1. plays ``unroll_length`` steps in ``num_envs`` environments, choosing actions by
   search in the learned model (:func:`mbrl_jax.planners.search.make_search`,
   Gumbel MuZero by default) from ``representation(obs)``;
2. stores the steps with their search policies and the parts of their n-step
   value targets (discounted rewards, bootstrap discount and observation) in a
   trajectory replay buffer held as a pytree (``[capacity, num_envs]``
   time-major arrays);
3. takes ``updates_per_iteration`` gradient steps on ``K``-step unrolls sampled
   from the buffer. Value targets are recomputed for every sample with the
   networks as they were at the start of the iteration (a target network that
   also "reanalyses" old data, so stale bootstrap values do not linger in the
   buffer). The loss sums policy, value and reward cross-entropies at each of the
   ``K + 1`` positions, the dynamics' gradient halved at each step. Positions
   past the end of an episode train towards an absorbing state (zero reward
   and value, no policy loss).

Shape letters: N environments, B batch, K unroll steps, A actions, L latent size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from mbrl_jax.agents.common import check_range
from mbrl_jax.agents.mcts import num_discrete_actions
from mbrl_jax.agents.targets import completed_returns, evaluate_episodes, n_step_bootstrap
from mbrl_jax.models.value_transforms import (
    h,
    h_inverse,
    scalar_to_support,
    support_to_scalar,
)
from mbrl_jax.planners.search import SearchConfig, make_search
from mbrl_jax.types import Array, PRNGKey


class MLP(nn.Module):
    """Dense + LayerNorm + ReLU layers, then an optional linear output of ``out`` units."""

    hidden: Sequence[int]
    out: int | None = None
    zero_out: bool = False

    @nn.compact
    def __call__(self, x):
        for width in self.hidden:
            x = nn.relu(nn.LayerNorm()(nn.Dense(width)(x)))
        if self.out is not None:
            init = nn.initializers.zeros if self.zero_out else nn.linear.default_kernel_init
            x = nn.Dense(self.out, kernel_init=init)(x)
        return x


def _normalise(latent):
    low = latent.min(-1, keepdims=True)
    high = latent.max(-1, keepdims=True)
    return (latent - low) / jnp.maximum(high - low, 1e-5)


class MuZeroNet(nn.Module):
    """The three MuZero functions in one module (``method=`` picks one)."""

    num_actions: int
    latent_size: int = 64
    hidden: Sequence[int] = (64,)
    support_size: int = 10
    reward_support_size: int = 5

    def setup(self):
        self.repr_net = MLP(self.hidden, self.latent_size)
        self.dyn_net = MLP(self.hidden, self.latent_size)
        self.reward_net = MLP(self.hidden, 2 * self.reward_support_size + 1, zero_out=True)
        self.pred_torso = MLP(self.hidden)
        self.policy_head = nn.Dense(self.num_actions, kernel_init=nn.initializers.zeros)
        self.value_head = nn.Dense(2 * self.support_size + 1, kernel_init=nn.initializers.zeros)

    def represent(self, obs):
        """``obs [..., *obs_shape]`` -> latent ``[..., L]`` in ``[0, 1]``."""
        x = obs.reshape(*obs.shape[: obs.ndim - 1], -1).astype(jnp.float32)
        return _normalise(self.repr_net(x))

    def dynamics(self, latent, action):
        """``latent [..., L]``, ``action [...]`` -> (next latent, reward logits ``[..., 2R+1]``)."""
        x = jnp.concatenate([latent, jax.nn.one_hot(action, self.num_actions)], axis=-1)
        return _normalise(self.dyn_net(x)), self.reward_net(x)

    def predict(self, latent):
        """``latent [..., L]`` -> (policy logits ``[..., A]``, value logits ``[..., 2S+1]``)."""
        x = self.pred_torso(latent)
        return self.policy_head(x), self.value_head(x)

    def __call__(self, obs, action):
        latent = self.represent(obs)
        next_latent, reward = self.dynamics(latent, action)
        return self.predict(next_latent), reward


@struct.dataclass
class TrajectoryBuffer:
    """Time-major trajectories of ``N`` environments, ``[capacity, N, ...]`` each.

    Attributes:
      obs, action, reward, done, policy: stored steps (``done``: the episode
        ended at this step; ``policy``: the search's improved policy).
      partial, boot_discount, boot_obs: the n-step value target without its
        bootstrap value (:func:`mbrl_jax.agents.targets.n_step_bootstrap`):
        ``target = partial + boot_discount * v(boot_obs)``, recomputed with the
        current networks whenever the step is sampled.
      position: next row to write; ``size``: rows written (``<= capacity``).
    """

    obs: Array
    action: Array
    reward: Array
    done: Array
    policy: Array
    partial: Array
    boot_discount: Array
    boot_obs: Array
    position: Array
    size: Array

    @property
    def capacity(self) -> int:
        return self.action.shape[0]


def trajectory_buffer_init(capacity: int, num_envs: int, obs_shape, num_actions: int):
    """An empty :class:`TrajectoryBuffer`."""
    z = lambda *s, dtype=jnp.float32: jnp.zeros((capacity, num_envs, *s), dtype)  # noqa: E731
    return TrajectoryBuffer(
        obs=z(*obs_shape),
        action=z(dtype=jnp.int32),
        reward=z(),
        done=z(dtype=bool),
        policy=z(num_actions),
        partial=z(),
        boot_discount=z(),
        boot_obs=z(*obs_shape),
        position=jnp.int32(0),
        size=jnp.int32(0),
    )


def trajectory_buffer_add(buffer: TrajectoryBuffer, steps: dict) -> TrajectoryBuffer:
    """Writes ``[T, N, ...]`` steps (keys as the buffer's fields) at the write position."""
    t = steps["action"].shape[0]
    rows = (buffer.position + jnp.arange(t)) % buffer.capacity
    fields = {
        name: getattr(buffer, name).at[rows].set(value.astype(getattr(buffer, name).dtype))
        for name, value in steps.items()
    }
    return buffer.replace(
        **fields,
        position=(buffer.position + t) % buffer.capacity,
        size=jnp.minimum(buffer.size + t, buffer.capacity),
    )


def trajectory_buffer_sample(buffer: TrajectoryBuffer, key: PRNGKey, batch: int, unroll: int):
    """Samples ``batch`` windows of ``unroll + 1`` consecutive steps of one environment.

    Returns a dict of ``[B, unroll + 1, ...]`` arrays and ``valid [B, unroll + 1]``
    (false from the step after an episode's end on). Windows never cross the
    write position (the oldest row follows the newest).
    """
    time_key, env_key = jax.random.split(key)
    oldest = jnp.where(buffer.size < buffer.capacity, 0, buffer.position)
    start = jax.random.randint(time_key, (batch,), 0, jnp.maximum(buffer.size - unroll, 1))
    envs = jax.random.randint(env_key, (batch,), 0, buffer.action.shape[1])
    offsets = jnp.arange(unroll + 1)
    logical = jnp.minimum(start[:, None] + offsets, buffer.size - 1)
    rows = (oldest + logical) % buffer.capacity
    take = lambda x: x[rows, envs[:, None]]  # noqa: E731
    window = {name: take(getattr(buffer, name)) for name in _STEP_FIELDS}
    ended_before = jnp.cumsum(window["done"].astype(jnp.int32), axis=1) - window["done"]
    window["valid"] = ended_before == 0
    return window


_STEP_FIELDS = ("obs", "action", "reward", "done", "policy", "partial", "boot_discount", "boot_obs")


@dataclasses.dataclass(frozen=True)
class Config:
    """MuZero settings (validated on construction).

    Attributes:
      num_iterations: self-play + learning rounds.
      num_envs: environments playing in parallel.
      unroll_length: steps each environment takes per iteration.
      search: :class:`~mbrl_jax.planners.search.SearchConfig` (Gumbel MuZero).
      latent_size, hidden: network sizes.
      support_size, reward_support_size: categorical supports ``[-S, S]`` of the
        h-scaled value and reward.
      buffer_size: steps per environment kept in the replay buffer.
      unroll_steps: ``K``, model steps unrolled in the loss.
      n_step: steps of the value targets before bootstrapping.
      batch_size: sampled windows per gradient step.
      updates_per_iteration: gradient steps per iteration.
      learning_rate, max_grad_norm, value_coef: optimiser and loss settings.
      eval_envs, eval_steps: final evaluation (search without root noise).
    """

    num_iterations: int = 195
    num_envs: int = 16
    unroll_length: int = 32
    search: SearchConfig = dataclasses.field(
        default_factory=lambda: SearchConfig(num_simulations=16, policy="gumbel", discount=0.99)
    )
    latent_size: int = 64
    hidden: tuple[int, ...] = (64,)
    support_size: int = 10
    reward_support_size: int = 5
    buffer_size: int = 2048
    unroll_steps: int = 5
    n_step: int = 20
    batch_size: int = 256
    updates_per_iteration: int = 16
    learning_rate: float = 1e-3
    max_grad_norm: float = 5.0
    value_coef: float = 0.25
    eval_envs: int = 16
    eval_steps: int = 500

    def __post_init__(self):
        for name in (
            "num_iterations",
            "num_envs",
            "unroll_length",
            "latent_size",
            "support_size",
            "reward_support_size",
            "unroll_steps",
            "n_step",
            "batch_size",
            "updates_per_iteration",
            "eval_envs",
            "eval_steps",
        ):
            check_range(self, name, low=1)
        check_range(self, "learning_rate", low=0.0, low_open=True)
        if self.buffer_size < self.unroll_length + self.unroll_steps:
            raise ValueError(
                f"muzero.Config.buffer_size ({self.buffer_size}) must be >= unroll_length + "
                f"unroll_steps ({self.unroll_length + self.unroll_steps})"
            )


class TrainOutput(NamedTuple):
    """Result of one run (see :class:`mbrl_jax.agents.alphazero.TrainOutput`)."""

    reward: Array
    done: Array
    mean_return: Array
    loss: Array
    policy_loss: Array
    value_loss: Array
    reward_loss: Array
    eval_return: Array
    params: dict


def _scale_gradient(x, scale: float):
    return x * scale + jax.lax.stop_gradient(x) * (1.0 - scale)


def make_train(config: Config, env, env_params):
    """Builds ``train(key) -> TrainOutput`` for a discrete-action gymnax environment.

    Raises:
      ValueError: continuous actions, or bad settings.
    """
    c = config
    num_actions = num_discrete_actions(env, env_params)
    obs_shape = tuple(env.observation_space(env_params).shape)
    net = MuZeroNet(num_actions, c.latent_size, c.hidden, c.support_size, c.reward_support_size)

    def model_step(params, key, latent, action):
        next_latent, reward_logits = net.apply(params, latent, action, method=MuZeroNet.dynamics)
        reward = h_inverse(support_to_scalar(reward_logits, c.reward_support_size))
        return next_latent, reward, jnp.bool_(False)

    def evaluate(params, key, latents):
        logits, value_logits = net.apply(params, latents, method=MuZeroNet.predict)
        return logits, h_inverse(support_to_scalar(value_logits, c.support_size))

    def represent(params, obs):
        return net.apply(params, obs, method=MuZeroNet.represent)

    search = make_search(c.search, model_step, evaluate, num_actions)
    greedy_search = make_search(c.search.noiseless(), model_step, evaluate, num_actions)
    optimizer = optax.chain(optax.clip_by_global_norm(c.max_grad_norm), optax.adam(c.learning_rate))
    step_env = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    reset_env = jax.vmap(env.reset, in_axes=(0, None))
    k = c.unroll_steps

    def value_of(params, obs):
        return evaluate(params, None, represent(params, obs))[1]

    def loss_fn(params, target_params, window):
        valid = window["valid"].astype(jnp.float32)  # [B, K+1]
        latent = net.apply(params, window["obs"][:, 0], method=MuZeroNet.represent)
        boot_value = jax.lax.stop_gradient(value_of(target_params, window["boot_obs"]))
        target = window["partial"] + window["boot_discount"] * boot_value
        value_target = scalar_to_support(h(target * valid), c.support_size)
        reward_target = scalar_to_support(
            h(window["reward"] * valid), c.reward_support_size
        )  # reward of step t + j, predicted by the j + 1-th dynamics step
        policy_loss = value_loss = reward_loss = 0.0
        for j in range(k + 1):
            logits, value_logits = net.apply(params, latent, method=MuZeroNet.predict)
            policy_loss += jnp.mean(
                valid[:, j] * optax.softmax_cross_entropy(logits, window["policy"][:, j])
            )
            value_loss += jnp.mean(optax.softmax_cross_entropy(value_logits, value_target[:, j]))
            if j < k:
                action = jnp.where(
                    window["valid"][:, j], window["action"][:, j], 0
                )  # any action keeps an absorbing state absorbing
                latent, reward_logits = net.apply(params, latent, action, method=MuZeroNet.dynamics)
                reward_loss += jnp.mean(
                    optax.softmax_cross_entropy(reward_logits, reward_target[:, j])
                )
                latent = _scale_gradient(latent, 0.5)
        scale = 1.0 / (k + 1)
        total = scale * (policy_loss + c.value_coef * value_loss + reward_loss)
        return total, (scale * policy_loss, scale * value_loss, scale * reward_loss)

    def train(key: PRNGKey) -> TrainOutput:
        init_key, reset_key, loop_key, eval_key = jax.random.split(key, 4)
        obs, states = reset_env(jax.random.split(reset_key, c.num_envs), env_params)
        params = net.init(init_key, obs, jnp.zeros(c.num_envs, jnp.int32))
        opt_state = optimizer.init(params)
        buffer = trajectory_buffer_init(c.buffer_size, c.num_envs, obs_shape, num_actions)

        def act(carry, step_key):
            obs, states, params = carry
            search_key, env_key = jax.random.split(step_key)
            result = search(params, search_key, represent(params, obs))
            next_obs, next_states, reward, terminated, truncated, info = step_env(
                jax.random.split(env_key, c.num_envs), states, result.action, env_params
            )
            record = (obs, result.action, result.policy, reward, terminated)
            return (next_obs, next_states, params), record + (truncated, info["final_observation"])

        def sgd_step(carry, step_key):
            params, opt_state, buffer, target_params = carry
            window = trajectory_buffer_sample(buffer, step_key, c.batch_size, k)
            (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                params, target_params, window
            )
            updates, opt_state = optimizer.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            return (params, opt_state, buffer, target_params), (loss, *aux)

        def iteration(carry, key):
            params, opt_state, obs, states, buffer, running = carry
            play_key, learn_key = jax.random.split(key)
            (obs, states, _), record = jax.lax.scan(
                act, (obs, states, params), jax.random.split(play_key, c.unroll_length)
            )
            s_obs, action, policy, rewards, term, trunc, final_obs = record
            partial, boot_discount, boot_index = n_step_bootstrap(
                rewards, term, trunc, c.search.discount, c.n_step
            )
            boot_obs = jnp.take_along_axis(
                final_obs, boot_index.reshape(*boot_index.shape, *[1] * len(obs_shape)), axis=0
            )
            done = term | trunc
            _, mean_return, running = completed_returns(rewards, done, running)
            buffer = trajectory_buffer_add(
                buffer,
                {
                    "obs": s_obs,
                    "action": action,
                    "reward": rewards,
                    # A truncated episode's last step is stored as an end too:
                    # the next stored step belongs to a new episode.
                    "done": done,
                    "policy": policy,
                    "partial": partial,
                    "boot_discount": boot_discount,
                    "boot_obs": boot_obs,
                },
            )
            (params, opt_state, buffer, _), losses = jax.lax.scan(
                sgd_step,
                (params, opt_state, buffer, params),
                jax.random.split(learn_key, c.updates_per_iteration),
            )
            out = (rewards[:, 0], done[:, 0], mean_return, *(x.mean() for x in losses))
            return (params, opt_state, obs, states, buffer, running), out

        carry = (params, opt_state, obs, states, buffer, jnp.zeros(c.num_envs))
        (params, *_), outs = jax.lax.scan(
            iteration, carry, jax.random.split(loop_key, c.num_iterations)
        )
        reward, done, mean_return, loss, p_loss, v_loss, r_loss = outs
        eval_return = evaluate_episodes(
            lambda p, key, obs, states: greedy_search(p, key, represent(p, obs)).action,
            env,
            env_params,
            params,
            eval_key,
            c.eval_envs,
            c.eval_steps,
        )
        return TrainOutput(
            reward=reward.reshape(-1),
            done=done.reshape(-1),
            mean_return=mean_return,
            loss=loss,
            policy_loss=p_loss,
            value_loss=v_loss,
            reward_loss=r_loss,
            eval_return=eval_return,
            params=params,
        )

    return train
