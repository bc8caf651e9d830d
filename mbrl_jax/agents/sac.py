"""SAC: soft actor-critic (Haarnoja et al., 2018) for continuous actions, compiled end to end.

The model-free baseline of the continuous-control agents, and the policy
optimiser of the imagination-based ones (MBPO): :func:`init_sac`,
:func:`update` and :func:`act` are pure functions of a :class:`SACState`
pytree, so a caller can train on any batch of
:class:`~mbrl_jax.core.types.Transition` s (real or imagined).

The policy is a tanh-squashed diagonal Gaussian on ``[-1, 1]^A``
(:func:`squashed_gaussian`, log std clipped to ``[-5, 2]``), rescaled to the
environment's bounds; its log-probabilities, the entropy and the target
entropy ``-A`` are those of the ``[-1, 1]`` action, so they do not depend on
the bounds' scale. Twin Q networks see the ``[-1, 1]`` action; their target
copies follow by Polyak averaging; the temperature is learned (as log alpha).
Targets bootstrap through time-limit truncation and not through termination
(``Transition.done`` is termination only).

``train(key)`` (:func:`make_train`) runs ``num_steps`` real steps of one
environment (auto-reset) in one ``lax.scan`` per block of steps: act
(uniformly random before ``learning_starts``), step, store, then
``updates_per_step`` gradient steps once there is enough data. Jit it and vmap
it over seeds.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from gymnax.environments import spaces

from mbrl_jax.agents.common import vector_observation_shape
from mbrl_jax.core.chunked import Chunked, EvalResult, as_train, evaluate_episodes
from mbrl_jax.core.replay import ReplayBuffer, buffer_add, buffer_init, buffer_sample
from mbrl_jax.core.types import Array, PRNGKey, Transition
from mbrl_jax.core.validation import MAX_STEPS, check_float, check_int_value, check_range

LOG_STD_MIN = -5.0
LOG_STD_MAX = 2.0
METRIC_NAMES = ("critic_loss", "actor_loss", "alpha_loss", "alpha", "entropy", "q_mean")


@dataclasses.dataclass(frozen=True)
class Config:
    """SAC settings (validated on construction; defaults are the paper's / SB3's).

    Attributes:
      num_steps: real environment steps per seed (the budget).
      hidden_sizes: widths of the actor's and of each critic's ReLU layers.
      actor_lr, critic_lr, alpha_lr: Adam learning rates, ``> 0``.
      batch_size: transitions per gradient step.
      discount: ``[0, 1]``.
      tau: Polyak rate of the target critics, ``(0, 1]``.
      buffer_size: replay capacity (the run caps it at ``num_steps``); ``>= batch_size``.
      learning_starts: steps of uniformly random actions before the policy
        acts; gradient steps start once this many steps (and ``batch_size``
        transitions) are stored (a run with fewer steps than either makes none).
      updates_per_step: gradient steps per real step (the update-to-data ratio), ``>= 1``.
      init_alpha: initial temperature, ``> 0``.
      target_entropy: the temperature's entropy target; ``None`` for ``-A``.
    """

    num_steps: int = 20_000
    hidden_sizes: tuple[int, ...] = (256, 256)
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    batch_size: int = 256
    discount: float = 0.99
    tau: float = 0.005
    buffer_size: int = 1_000_000
    learning_starts: int = 1000
    updates_per_step: int = 1
    init_alpha: float = 1.0
    target_entropy: float | None = None

    def __post_init__(self):
        check_range(self, "num_steps", low=1, high=MAX_STEPS)
        for name in ("batch_size", "buffer_size", "updates_per_step"):
            check_range(self, name, low=1)
        check_range(self, "learning_starts", low=0)
        hidden = self.hidden_sizes
        if not isinstance(hidden, tuple | list) or not hidden:
            raise ValueError(
                f"sac.Config.hidden_sizes must be a non-empty tuple of integers >= 1, "
                f"got {hidden!r}"
            )
        for i, width in enumerate(hidden):
            check_int_value(f"sac.Config.hidden_sizes[{i}]", width, low=1)
        object.__setattr__(self, "hidden_sizes", tuple(hidden))
        for name in ("actor_lr", "critic_lr", "alpha_lr", "init_alpha"):
            check_range(self, name, low=0.0, low_open=True)
        check_range(self, "discount", low=0.0, high=1.0)
        check_range(self, "tau", low=0.0, high=1.0, low_open=True)
        if self.target_entropy is not None:
            check_float(self, "target_entropy")
        if self.buffer_size < self.batch_size:
            raise ValueError(
                f"sac.Config.buffer_size ({self.buffer_size}) must be >= batch_size "
                f"({self.batch_size})"
            )


# ----------------------------------------------------------------------------- networks
class Actor(nn.Module):
    """``obs [..., D]`` -> ``(mean [..., A], log_std [..., A])`` of the pre-tanh Gaussian,
    log std clipped to ``[LOG_STD_MIN, LOG_STD_MAX]``."""

    hidden_sizes: tuple[int, ...]
    action_dim: int

    @nn.compact
    def __call__(self, obs):
        x = obs
        for width in self.hidden_sizes:
            x = nn.relu(nn.Dense(width)(x))
        mean = nn.Dense(self.action_dim)(x)
        log_std = jnp.clip(nn.Dense(self.action_dim)(x), LOG_STD_MIN, LOG_STD_MAX)
        return mean, log_std


class Critic(nn.Module):
    """``(obs [..., D], action [..., A] in [-1, 1])`` -> ``q [...]``."""

    hidden_sizes: tuple[int, ...]

    @nn.compact
    def __call__(self, obs, action):
        x = jnp.concatenate([obs, action], axis=-1)
        for width in self.hidden_sizes:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(1)(x)[..., 0]


def squashed_gaussian(mean: Array, log_std: Array) -> distrax.Distribution:
    """``tanh(u)``, ``u ~ N(mean, exp(log_std)^2)`` per dimension: batch shape ``[...]``,
    event ``[A]`` in ``(-1, 1)^A``; ``log_prob`` is the Gaussian's minus
    ``sum log(1 - tanh(u)^2)`` (computed stably from ``u`` by ``sample_and_log_prob``)."""
    base = distrax.MultivariateNormalDiag(mean, jnp.exp(log_std))
    return distrax.Transformed(base, distrax.Block(distrax.Tanh(), 1))


def _to_env(action, low, high):
    return low + 0.5 * (action + 1.0) * (high - low)


def _from_env(action, low, high):
    return jnp.clip(2.0 * (action - low) / (high - low) - 1.0, -1.0, 1.0)


def _q(critic: Critic, params, obs, action) -> Array:
    """Both critics: ``[2, ...]``."""
    return jax.vmap(critic.apply, in_axes=(0, None, None))(params, obs, action)


# -------------------------------------------------------------------------- the learner
@struct.dataclass
class SACState:
    """Everything SAC learns and its optimisers' state (a pytree).

    Attributes:
      actor_params: :class:`Actor` params.
      critic_params: both :class:`Critic` s' params, leaves stacked ``[2, ...]``.
      target_critic_params: their Polyak averages, same structure.
      log_alpha: ``[]`` log temperature.
      actor_opt_state, critic_opt_state, alpha_opt_state: Adam states.
      action_low, action_high: ``[A]`` the environment's action bounds
        (:func:`act` returns actions in them; :func:`update` reads batches of them).
      steps: ``[]`` int32 gradient steps taken.
    """

    actor_params: Any
    critic_params: Any
    target_critic_params: Any
    log_alpha: Array
    actor_opt_state: Any
    critic_opt_state: Any
    alpha_opt_state: Any
    action_low: Array
    action_high: Array
    steps: Array

    @property
    def action_dim(self) -> int:
        return self.action_low.shape[-1]


def _parts(config: Config, action_dim: int):
    return (
        Actor(config.hidden_sizes, action_dim),
        Critic(config.hidden_sizes),
        optax.adam(config.actor_lr),
        optax.adam(config.critic_lr),
        optax.adam(config.alpha_lr),
    )


def init_sac(
    config: Config, key: PRNGKey, obs_dim: int, action_dim: int, action_low=-1.0, action_high=1.0
) -> SACState:
    """A fresh learner for observations ``[D = obs_dim]`` and actions ``[A = action_dim]``
    in ``[action_low, action_high]`` (scalars or ``[A]``, finite, low < high)."""
    actor, critic, actor_tx, critic_tx, alpha_tx = _parts(config, action_dim)
    actor_key, critic_key = jax.random.split(key)
    obs = jnp.zeros((obs_dim,), jnp.float32)
    action = jnp.zeros((action_dim,), jnp.float32)
    actor_params = actor.init(actor_key, obs)
    critic_params = jax.vmap(lambda k: critic.init(k, obs, action))(jax.random.split(critic_key))
    log_alpha = jnp.log(jnp.float32(config.init_alpha))
    bound = lambda b: jnp.broadcast_to(jnp.asarray(b, jnp.float32), (action_dim,))  # noqa: E731
    return SACState(
        actor_params=actor_params,
        critic_params=critic_params,
        target_critic_params=critic_params,
        log_alpha=log_alpha,
        actor_opt_state=actor_tx.init(actor_params),
        critic_opt_state=critic_tx.init(critic_params),
        alpha_opt_state=alpha_tx.init(log_alpha),
        action_low=bound(action_low),
        action_high=bound(action_high),
        steps=jnp.int32(0),
    )


def act(
    config: Config, state: SACState, key: PRNGKey, obs: Array, deterministic: bool = False
) -> Array:
    """The policy's action for ``obs [..., D]``: ``[..., A]`` in the bounds of ``state``.

    ``deterministic`` (static) takes ``tanh(mean)``; otherwise one sample per
    observation (``key`` is used only then).
    """
    actor = Actor(config.hidden_sizes, state.action_dim)
    mean, log_std = actor.apply(state.actor_params, obs)
    if deterministic:
        squashed = jnp.tanh(mean)
    else:
        squashed = squashed_gaussian(mean, log_std).sample(seed=key)
    return _to_env(squashed, state.action_low, state.action_high)


def update(
    config: Config, state: SACState, key: PRNGKey, batch: Transition
) -> tuple[SACState, dict[str, Array]]:
    """One gradient step of the critics, then the actor, then the temperature,
    then the Polyak step of the target critics.

    Args:
      config: :class:`Config` (learning rates, discount, tau, target entropy).
      state: the learner.
      key: PRNG key (next actions of the targets, the actor's actions).
      batch: :class:`~mbrl_jax.core.types.Transition` ``[B]``: ``state``,
        ``next_state`` ``[B, D]`` (``next_state`` before any reset),
        ``action [B, A]`` in the state's bounds, ``reward [B]``, ``done [B]``
        True where the step terminated (not where it was truncated).

    Returns:
      ``(state, metrics)``: metrics of ``[]`` floats named in
      :data:`METRIC_NAMES` (``alpha`` the temperature this step used,
      ``entropy`` minus the policy's mean log-probability, ``q_mean`` the critics'
      mean on the batch).
    """
    action_dim = state.action_dim
    actor, critic, actor_tx, critic_tx, alpha_tx = _parts(config, action_dim)
    target_entropy = (
        -float(action_dim) if config.target_entropy is None else float(config.target_entropy)
    )
    next_key, actor_key = jax.random.split(key)
    alpha = jnp.exp(state.log_alpha)
    obs = batch.state.astype(jnp.float32)
    next_obs = batch.next_state.astype(jnp.float32)
    action = _from_env(batch.action.astype(jnp.float32), state.action_low, state.action_high)

    next_dist = squashed_gaussian(*actor.apply(state.actor_params, next_obs))
    next_action, next_log_prob = next_dist.sample_and_log_prob(seed=next_key)
    next_q = _q(critic, state.target_critic_params, next_obs, next_action).min(0)
    not_done = 1.0 - batch.done.astype(jnp.float32)
    target = batch.reward.astype(jnp.float32) + config.discount * not_done * (
        next_q - alpha * next_log_prob
    )
    target = jax.lax.stop_gradient(target)

    def critic_loss_fn(params):
        q = _q(critic, params, obs, action)
        return 0.5 * jnp.mean(jnp.square(q - target), axis=-1).sum(), q

    (critic_loss, q), grads = jax.value_and_grad(critic_loss_fn, has_aux=True)(state.critic_params)
    updates, critic_opt_state = critic_tx.update(grads, state.critic_opt_state, state.critic_params)
    critic_params = optax.apply_updates(state.critic_params, updates)

    def actor_loss_fn(params):
        dist = squashed_gaussian(*actor.apply(params, obs))
        new_action, log_prob = dist.sample_and_log_prob(seed=actor_key)
        q_new = _q(critic, critic_params, obs, new_action).min(0)
        return jnp.mean(alpha * log_prob - q_new), log_prob

    (actor_loss, log_prob), grads = jax.value_and_grad(actor_loss_fn, has_aux=True)(
        state.actor_params
    )
    updates, actor_opt_state = actor_tx.update(grads, state.actor_opt_state, state.actor_params)
    actor_params = optax.apply_updates(state.actor_params, updates)

    entropy_gap = jax.lax.stop_gradient(log_prob + target_entropy)

    def alpha_loss_fn(log_alpha):
        return -jnp.mean(log_alpha * entropy_gap)

    alpha_loss, grad = jax.value_and_grad(alpha_loss_fn)(state.log_alpha)
    updates, alpha_opt_state = alpha_tx.update(grad, state.alpha_opt_state, state.log_alpha)
    log_alpha = optax.apply_updates(state.log_alpha, updates)

    new_state = state.replace(
        actor_params=actor_params,
        critic_params=critic_params,
        target_critic_params=optax.incremental_update(
            critic_params, state.target_critic_params, config.tau
        ),
        log_alpha=log_alpha,
        actor_opt_state=actor_opt_state,
        critic_opt_state=critic_opt_state,
        alpha_opt_state=alpha_opt_state,
        steps=state.steps + 1,
    )
    metrics = {
        "critic_loss": critic_loss,
        "actor_loss": actor_loss,
        "alpha_loss": alpha_loss,
        "alpha": alpha,
        "entropy": -jnp.mean(log_prob),
        "q_mean": jnp.mean(q),
    }
    return new_state, metrics


# ----------------------------------------------------------------------------- the run
class StepMetrics(NamedTuple):
    """Per real step, ``[num_steps]`` each.

    Attributes:
      reward: the step's reward.
      done: True where the step ended an episode (termination or truncation).
      q_updates: int32 gradient steps taken after the step (0 or ``updates_per_step``).
      critic_loss, actor_loss, alpha, entropy: the mean of those steps'
        :func:`update` metrics (0 where ``q_updates`` is 0).
    """

    reward: Array
    done: Array
    q_updates: Array
    critic_loss: Array
    actor_loss: Array
    alpha: Array
    entropy: Array


class TrainOutput(NamedTuple):
    """Result of one run: ``metrics`` (:class:`StepMetrics`) and the final learner
    (``agent``, a :class:`SACState`)."""

    metrics: StepMetrics
    agent: SACState


class SacRunState(NamedTuple):
    """A run between blocks of steps: the learner, the replay buffer, the current
    observation ``[D]`` and environment state, the next step ``t`` and the loop key."""

    agent: SACState
    buffer: ReplayBuffer
    obs: Array
    env_state: Any
    t: Array
    loop_key: PRNGKey


def action_bounds(env, env_params) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """``(low [A], high [A], shape)`` of a Box action space (``shape`` as the env takes it).

    Raises:
      ValueError: not a Box, or bounds that are not finite with low < high.
    """
    space = env.action_space(env_params)
    if not isinstance(space, spaces.Box):
        raise ValueError(
            f"env: SAC needs continuous (Box) actions; "
            f"{getattr(env, 'name', type(env).__name__)} has {space!r}"
        )
    shape = tuple(space.shape)
    size = int(np.prod(shape)) if shape else 1
    low = np.broadcast_to(np.asarray(space.low, np.float32), shape).reshape(size)
    high = np.broadcast_to(np.asarray(space.high, np.float32), shape).reshape(size)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low < high)):
        raise ValueError(
            f"env: SAC needs finite action bounds with low < high, got {low} and {high}"
        )
    return low, high, shape


def make_train(config: Config, env, env_params):
    """``train(key) -> TrainOutput``: :func:`make_chunked` in one call (jit it, vmap it
    over seeds)."""
    return as_train(make_chunked(config, env, env_params))


def make_chunked(config: Config, env, env_params) -> Chunked:
    """Builds the run in blocks of ``min(1000, num_steps // 20)`` steps (at least 1;
    the remainder in ``finish``).

    Raises:
      ValueError: an env without vector observations or continuous actions.
    """
    (obs_dim,) = vector_observation_shape(env, env_params, "SAC")
    low_np, high_np, env_action_shape = action_bounds(env, env_params)
    action_dim = low_np.size
    low, high = jnp.asarray(low_np), jnp.asarray(high_np)
    num_updates = config.updates_per_step
    capacity = min(config.buffer_size, config.num_steps)
    block = max(1, min(1000, config.num_steps // 20))
    num_blocks, remainder = divmod(config.num_steps, block)
    # A run too short to reach learning_starts or a batch never updates: no update compiled.
    learns = config.learning_starts <= config.num_steps and capacity >= config.batch_size
    keys_per_step = 3 + 2 * num_updates  # act, random action, env, (sample, update) per update
    eval_cap = int(getattr(env_params, "max_steps_in_episode", 1000))

    def init_run(key: PRNGKey) -> SacRunState:
        agent_key, reset_key, loop_key = jax.random.split(key, 3)
        agent = init_sac(config, agent_key, obs_dim, action_dim, low, high)
        obs, env_state = env.reset(reset_key, env_params)
        obs = obs.astype(jnp.float32)
        example = Transition(
            state=obs,
            action=jnp.zeros((action_dim,), jnp.float32),
            reward=jnp.float32(0),
            next_state=obs,
            done=jnp.bool_(False),
        )
        buffer = buffer_init(example, capacity)
        return SacRunState(agent, buffer, obs, env_state, jnp.int32(0), loop_key)

    def learn(agent, buffer, keys):
        def one(agent, pair):
            batch = buffer_sample(buffer, pair[0], config.batch_size)
            return update(config, agent, pair[1], batch)

        agent, metrics = jax.lax.scan(one, agent, keys.reshape(num_updates, 2))
        return agent, jax.tree.map(jnp.mean, metrics)

    def skip(agent, buffer, keys):
        return agent, {name: jnp.float32(0) for name in METRIC_NAMES}

    def step(carry, keys):
        agent, buffer, obs, env_state, t = carry
        policy_action = act(config, agent, keys[0], obs)
        random_action = jax.random.uniform(keys[1], (action_dim,), minval=low, maxval=high)
        action = jnp.where(t < config.learning_starts, random_action, policy_action)
        next_obs, env_state, reward, terminated, truncated, info = env.step(
            keys[2], env_state, action.reshape(env_action_shape), env_params
        )
        reward = reward.astype(jnp.float32)
        final_obs = info["final_observation"].astype(jnp.float32)
        transition = Transition(obs, action, reward, final_obs, terminated)
        buffer = buffer_add(buffer, jax.tree.map(lambda x: x[None], transition))
        if learns:
            ready = (t + 1 >= config.learning_starts) & (buffer.size >= config.batch_size)
            agent, m = jax.lax.cond(ready, learn, skip, agent, buffer, keys[3:])
        else:
            ready, (agent, m) = jnp.bool_(False), skip(agent, buffer, keys)
        out = StepMetrics(
            reward=reward,
            done=terminated | truncated,
            q_updates=ready.astype(jnp.int32) * num_updates,
            critic_loss=m["critic_loss"],
            actor_loss=m["actor_loss"],
            alpha=m["alpha"],
            entropy=m["entropy"],
        )
        return (agent, buffer, next_obs.astype(jnp.float32), env_state, t + 1), out

    def run_block(run: SacRunState, size: int):
        # Every step's keys in one vectorised call before the loop (Threefry in
        # the loop body costs compile time); the block's key is the run's key
        # folded with the block's first step, so chunking does not change it.
        block_key = jax.random.fold_in(run.loop_key, run.t)
        keys = jax.random.split(block_key, size * keys_per_step).reshape(size, keys_per_step)
        carry = (run.agent, run.buffer, run.obs, run.env_state, run.t)
        (agent, buffer, obs, env_state, t), metrics = jax.lax.scan(step, carry, keys)
        return SacRunState(agent, buffer, obs, env_state, t, run.loop_key), metrics

    def finish(run: SacRunState, outs: StepMetrics):
        metrics = jax.tree.map(lambda m: m.reshape(num_blocks * block), outs)
        if remainder:
            run, tail = run_block(run, remainder)
            metrics = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), metrics, tail)
        return run, TrainOutput(metrics, run.agent)

    def greedy(agent, key, obs, _states):
        actions = act(config, agent, key, obs, deterministic=True)
        return actions.reshape(obs.shape[0], *env_action_shape)

    def evaluate(run: SacRunState, key: PRNGKey, num_episodes: int = 10) -> EvalResult:
        return evaluate_episodes(greedy, env, env_params, run.agent, key, num_episodes, eval_cap)

    return Chunked(
        init=init_run,
        unit=lambda run: run_block(run, block),
        finish=finish,
        num_units=num_blocks,
        unit_steps=block,
        final_steps=remainder,
        evaluate=evaluate,
        eval_note="deterministic policy (tanh of the Gaussian's mean), real environment",
        stream=lambda outs: (outs.reward.reshape(-1), outs.done.reshape(-1)),
    )
