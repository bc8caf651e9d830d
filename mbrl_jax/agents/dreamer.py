"""Dreamer (Hafner et al., DreamerV3): an RSSM world model and an actor-critic trained in its
imagination, from vector observations or from pixels, compiled end to end.

``train(key)`` (:func:`make_train`) repeats one unit:

1. ``collect_steps`` steps of ``num_envs`` environments (auto-reset). Each
   environment keeps its posterior latent, filtered with the RSSM after every
   observation (restarted at episode starts); the actor acts on its feature
   (uniformly random actions before ``learning_starts`` steps). Steps go to a
   :class:`~mbrl_jax.core.replay.TrajectoryBuffer` as
   :class:`~mbrl_jax.core.types.Transition` s whose ``extras`` mark episode ends.
2. ``updates_per_unit`` updates, so that ``train_ratio`` replayed steps are
   trained on per environment step: sample ``batch_size`` windows of
   ``batch_length`` steps, one world-model step
   (:func:`mbrl_jax.models.rssm.rssm_update`), then one actor-critic step
   (:func:`mbrl_jax.agents.actor_critic.ac_update`) imagining
   ``horizon`` steps from every posterior state of the batch.

Observations of shape ``(D,)`` use MLPs, images ``(H, W, C)`` uint8 a CNN (wrap
an environment with :class:`mbrl_jax.envs.pixels.PixelObservation`). Jit
``train``; vmap it over seeds.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces

from mbrl_jax.agents import actor_critic as ac
from mbrl_jax.core.chunked import Chunked, EvalResult, as_train
from mbrl_jax.core.replay import (
    TrajectoryBuffer,
    trajectory_buffer_add,
    trajectory_buffer_init,
    trajectory_buffer_sample,
)
from mbrl_jax.core.types import Array, PRNGKey, Transition
from mbrl_jax.core.validation import MAX_STEPS, check_choice, check_range
from mbrl_jax.models import rssm

#: The update metrics (world model, then behaviour) in :attr:`TrainOutput.losses`.
METRIC_NAMES = (
    "recon_loss",
    "reward_loss",
    "cont_loss",
    "kl",
    "reward_error",
    "model_grad_norm",
    "actor_loss",
    "critic_loss",
    "imagined_return",
    "entropy",
    "return_scale",
)


@dataclasses.dataclass(frozen=True)
class Config:
    """Dreamer's settings (validated on construction).

    The defaults are sized for a CPU and were measured to learn
    ``Pendulum-v1`` and ``CartPole-v1`` (``examples/dreamer.py``): the ``tiny``
    model with 16 x 16 latents, imagination from 256 of each batch's 1,024
    posterior states, train ratio 256, and larger step sizes than DreamerV3's
    for the model (4x) and critic (3x), since a CPU run makes far fewer
    updates; the actor's is DreamerV3's 3e-5 for discrete actions (REINFORCE)
    and 1e-4 for continuous ones (gradients through the model, lower
    variance). On CartPole-v1 the policy reaches 500 within 8-17k steps and
    may fall back for stretches afterwards, at every actor step size tried
    (1e-4, 3e-5, 1e-5). From pixels these defaults (at train ratio 64-128)
    did not learn within 20-44k steps on this CPU; see the README.
    :func:`dreamerv3` gives DreamerV3's own settings (size ``xs`` unless chosen).

    Attributes:
      num_steps: real environment steps per seed, all ``num_envs`` counted; a
        multiple of ``num_envs``.
      model_size: ``"tiny"``, ``"xs"``, ``"s"`` or ``"m"`` (:data:`mbrl_jax.models.rssm.SIZES`);
        the actor and critic take its hidden units and layers.
      num_envs: environments stepped together.
      train_ratio: replayed steps trained on per environment step, ``> 0``.
      batch_size, batch_length: ``B`` windows of ``T`` steps per update.
      collect_steps: steps of each environment between blocks of updates.
      learning_starts: random-action steps (all environments) before the
        actor acts and updates start.
      buffer_size: replay capacity in steps (all environments).
      horizon, discount, lambda_, actor_lr, critic_lr, entropy_scale: the
        actor-critic's (:class:`mbrl_jax.agents.actor_critic.ACConfig`);
        ``actor_lr=None`` picks 3e-5 for discrete and 1e-4 for continuous actions.
      model_lr: the world model's Adam step size.
      stoch, classes: the RSSM's categorical latents.
      imagine_starts: imagine from this many of the ``batch_size * batch_length``
        posterior states of each update, drawn at random without replacement
        (``None``: all of them, as DreamerV3). Imagination is most of an update's
        cost, so fewer starts buy a higher ``train_ratio`` on a CPU.
    """

    num_steps: int = 20_000
    model_size: str = "tiny"
    num_envs: int = 4
    train_ratio: float = 256.0
    batch_size: int = 16
    batch_length: int = 64
    collect_steps: int = 8
    learning_starts: int = 1024
    buffer_size: int = 1_000_000
    horizon: int = 15
    discount: float = 0.997
    lambda_: float = 0.95
    actor_lr: float | None = None
    critic_lr: float = 1e-4
    entropy_scale: float = 3e-4
    model_lr: float = 4e-4
    stoch: int = 16
    classes: int = 16
    imagine_starts: int | None = 256

    def __post_init__(self):
        check_range(self, "num_steps", low=1, high=MAX_STEPS)
        check_choice(self, "model_size", tuple(rssm.SIZES))
        for name in ("num_envs", "batch_size", "batch_length", "collect_steps", "buffer_size"):
            check_range(self, name, low=1)
        for name in ("horizon", "stoch", "classes"):
            check_range(self, name, low=1)
        check_range(self, "learning_starts", low=0)
        if self.imagine_starts is not None:
            check_range(self, "imagine_starts", low=1, high=self.batch_size * self.batch_length)
        check_range(self, "train_ratio", low=0.0, low_open=True)
        check_range(self, "model_lr", low=0.0, low_open=True)
        if self.num_steps % self.num_envs:
            raise ValueError(
                f"dreamer.Config.num_steps ({self.num_steps}) must be a multiple of "
                f"num_envs ({self.num_envs})"
            )
        if self.updates_per_unit < 1:
            raise ValueError(
                f"dreamer.Config: train_ratio {self.train_ratio} gives no update per "
                f"{self.collect_steps * self.num_envs} collected steps at batch "
                f"{self.batch_size} x {self.batch_length}; raise collect_steps or train_ratio"
            )
        if self.actor_lr is not None:
            check_range(self, "actor_lr", low=0.0, low_open=True)
        self.actor_critic(discrete=True)  # validates the actor-critic's fields

    @property
    def updates_per_unit(self) -> int:
        """Updates after each unit of ``collect_steps * num_envs`` steps."""
        replayed = self.collect_steps * self.num_envs * self.train_ratio
        return int(round(replayed / (self.batch_size * self.batch_length)))

    @property
    def effective_train_ratio(self) -> float:
        """The replayed steps per environment step the run does."""
        per_unit = self.updates_per_unit * self.batch_size * self.batch_length
        return per_unit / (self.collect_steps * self.num_envs)

    def actor_critic(self, discrete: bool) -> ac.ACConfig:
        """The actor-critic's settings for discrete or continuous actions."""
        size = rssm.SIZES[self.model_size]
        actor_lr = self.actor_lr if self.actor_lr is not None else (3e-5 if discrete else 1e-4)
        return ac.ACConfig(
            horizon=self.horizon,
            discount=self.discount,
            lambda_=self.lambda_,
            actor_lr=actor_lr,
            critic_lr=self.critic_lr,
            entropy_scale=self.entropy_scale,
            hidden=size["hidden"],
            layers=size["layers"],
        )


def dreamerv3(model_size: str = "xs", **overrides) -> Config:
    """DreamerV3's settings (Hafner et al. 2023, table of hyper-parameters):
    train ratio 512, 32 x 32 latents, model step size 1e-4, actor and critic
    3e-5, imagination from every posterior state of the batch."""
    settings = dict(
        model_size=model_size,
        train_ratio=512.0,
        actor_lr=3e-5,
        critic_lr=3e-5,
        model_lr=1e-4,
        stoch=32,
        classes=32,
        imagine_starts=None,
    )
    return Config(**{**settings, **overrides})


class DreamerState(NamedTuple):
    """What Dreamer learns: the world model (:class:`mbrl_jax.models.rssm.RSSMParams`)
    and the actor-critic (:class:`mbrl_jax.agents.actor_critic.ACState`)."""

    model: rssm.RSSMParams
    behaviour: ac.ACState


class RunState(NamedTuple):
    """A run between units.

    Attributes:
      agent: :class:`DreamerState`.
      buffer: the replayed steps, ``[capacity, num_envs, ...]``.
      obs: ``[N, *obs_shape]`` current observations; ``env_state`` their states.
      latent: :class:`~mbrl_jax.models.rssm.RSSMState` ``[N, ...]`` posteriors of ``obs``.
      t: ``[]`` int32 steps taken, all environments counted.
      loop_key: the run's key.
    """

    agent: DreamerState
    buffer: TrajectoryBuffer
    obs: Array
    env_state: Any
    latent: rssm.RSSMState
    t: Array
    loop_key: PRNGKey


class StepMetrics(NamedTuple):
    """Per step of the first environment, ``[num_steps // num_envs]``: its ``reward`` and
    ``done`` (termination or truncation)."""

    reward: Array
    done: Array


class TrainOutput(NamedTuple):
    """Result of one run.

    Attributes:
      metrics: :class:`StepMetrics`.
      losses: dict of ``[num_units]`` means per unit of the update metrics
        (world model: ``recon_loss``, ``reward_loss``, ``cont_loss``, ``kl``,
        ``reward_error``, ``model_grad_norm``; behaviour: ``actor_loss``,
        ``critic_loss``, ``imagined_return``, ``entropy``, ``return_scale``;
        zeros before learning starts) and ``updates`` (int32 per unit).
      agent: the final :class:`DreamerState`.
    """

    metrics: StepMetrics
    losses: dict
    agent: DreamerState


class Spec(NamedTuple):
    """What Dreamer knows of an environment (built by :func:`env_spec`)."""

    obs_shape: tuple[int, ...]
    discrete: bool
    action_size: int
    low: np.ndarray | None
    high: np.ndarray | None
    env_action_shape: tuple[int, ...]


def env_spec(env, env_params) -> Spec:
    """Observation shape and action type of an environment, or a one-line ``ValueError``."""
    obs_space = env.observation_space(env_params)
    name = getattr(env, "name", type(env).__name__)
    if isinstance(obs_space, spaces.Discrete):
        raise ValueError(
            f"env: Dreamer needs vector or image observations; {name} observes a discrete "
            "index: wrap it (envs.VectorObservation or envs.pixels.PixelObservation)"
        )
    shape = tuple(obs_space.shape)
    if len(shape) not in (1, 3):
        raise ValueError(f"env: Dreamer needs observations of shape (D,) or (H, W, C), got {shape}")
    space = env.action_space(env_params)
    if isinstance(space, spaces.Discrete):
        return Spec(shape, True, int(space.n), None, None, ())
    from mbrl_jax.agents.sac import action_bounds

    low, high, env_shape = action_bounds(env, env_params)
    return Spec(shape, False, low.size, low, high, env_shape)


def model_config(config: Config, spec: Spec) -> rssm.RSSMConfig:
    """The RSSM the run builds (image shapes are checked here)."""
    return rssm.preset(
        config.model_size,
        spec.obs_shape,
        spec.action_size,
        spec.discrete,
        stoch=config.stoch,
        classes=config.classes,
        learning_rate=config.model_lr,
    )


def to_env_action(spec: Spec, action: Array) -> Array:
    """The actor's action in the environment's terms: discrete actions as they
    are; continuous ones ``[..., A]`` in ``[-1, 1]`` mapped onto the action box
    and reshaped to ``[..., *env_action_shape]``."""
    if spec.discrete:
        return action
    low, high = jnp.asarray(spec.low), jnp.asarray(spec.high)
    scaled = low + 0.5 * (action + 1.0) * (high - low)
    return scaled.reshape(*action.shape[:-1], *spec.env_action_shape)


def filter_latent(
    mcfg: rssm.RSSMConfig, params, key: PRNGKey, latent, action: Array, obs: Array, last: Array
):
    """One filtering step while acting: the posterior latent of ``obs`` after
    ``action`` (leading ``[N]`` axes), restarted from ``obs`` alone where ``last``
    (``[N]`` bool: the step ended an episode and ``obs`` is the reset one)."""
    embed = rssm.encode(mcfg, params, obs)
    post_key, first_key = jax.random.split(key)
    post, _, _ = rssm.observe_step(mcfg, params, post_key, latent, action, embed)
    restart = rssm.first_state(mcfg, params, first_key, embed)
    return rssm.select_state(last, restart, post)


def make_train(config: Config, env, env_params):
    """``train(key) -> TrainOutput``: :func:`make_chunked` in one call (jit it, vmap it
    over seeds)."""
    return as_train(make_chunked(config, env, env_params))


def make_chunked(config: Config, env, env_params) -> Chunked:
    """Builds the run as units of ``collect_steps`` steps of every environment plus
    their updates (a remainder of steps, without updates, in ``finish``).

    Raises:
      ValueError: an environment Dreamer cannot take (discrete observations, an
        image the encoder cannot take, unbounded actions).
    """
    spec = env_spec(env, env_params)
    mcfg = model_config(config, spec)
    acfg = config.actor_critic(spec.discrete)
    model = rssm.rssm_model(mcfg)
    n, per_env = config.num_envs, config.num_steps // config.num_envs
    num_units, remainder = divmod(per_env, config.collect_steps)
    capacity = max(1, min(config.buffer_size // n, per_env))
    num_updates = config.updates_per_unit
    discrete, action_size = spec.discrete, spec.action_size
    eval_cap = int(getattr(env_params, "max_steps_in_episode", 1000))
    v_reset = jax.vmap(env.reset, in_axes=(0, None))
    v_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def first_latent(params, key, obs):
        return rssm.first_state(mcfg, params, key, rssm.encode(mcfg, params, obs))

    def init_run(key: PRNGKey) -> RunState:
        model_key, ac_key, reset_key, latent_key, loop_key = jax.random.split(key, 5)
        agent = DreamerState(
            model.init(model_key),
            ac.ac_init(acfg, ac_key, mcfg.feature_size, action_size, discrete),
        )
        obs, env_state = v_reset(jax.random.split(reset_key, n), env_params)
        example = Transition(
            state=obs[0],
            action=jnp.int32(0) if discrete else jnp.zeros((action_size,), jnp.float32),
            reward=jnp.float32(0),
            next_state=obs[0],
            done=jnp.bool_(False),
            extras=jnp.bool_(False),
        )
        buffer = trajectory_buffer_init(example, capacity, n)
        latent = first_latent(agent.model.params, latent_key, obs)
        return RunState(agent, buffer, obs, env_state, latent, jnp.int32(0), loop_key)

    def act(agent, key, latent, t):
        policy_key, random_key = jax.random.split(key)
        feat = rssm.feature(latent)
        policy = ac.sample_action(
            acfg, action_size, discrete, agent.behaviour.actor_params, policy_key, feat
        )
        if discrete:
            random = jax.random.randint(random_key, (n,), 0, action_size)
        else:
            random = jax.random.uniform(random_key, (n, action_size), minval=-1.0, maxval=1.0)
        return jnp.where(t < config.learning_starts, random, policy)

    def env_step(carry, key):
        agent, buffer, obs, env_state, latent, t = carry
        act_key, env_key, filter_key = jax.random.split(key, 3)
        action = act(agent, act_key, latent, t)
        next_obs, env_state, reward, terminated, truncated, info = v_step(
            jax.random.split(env_key, n), env_state, to_env_action(spec, action), env_params
        )
        last = terminated | truncated
        step = Transition(
            obs,
            action,
            reward.astype(jnp.float32),
            info["final_observation"].astype(obs.dtype),
            terminated,
            last,
        )
        buffer = trajectory_buffer_add(buffer, jax.tree.map(lambda x: x[None], step))
        latent = filter_latent(mcfg, agent.model.params, filter_key, latent, action, next_obs, last)
        out = StepMetrics(reward[0].astype(jnp.float32), last[0])
        return (agent, buffer, next_obs.astype(obs.dtype), env_state, latent, t + n), out

    def update(agent: DreamerState, key, buffer):
        sample_key, model_key, ac_key, start_key = jax.random.split(key, 4)
        window, _ = trajectory_buffer_sample(
            buffer,
            sample_key,
            config.batch_size,
            config.batch_length,
            done=lambda w: jnp.zeros_like(w.done),
        )
        model_params, (observed, wm_metrics) = rssm.rssm_update(
            mcfg, agent.model, model_key, window
        )
        start = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), observed.states)
        start_cont = 1.0 - window.done.reshape(-1).astype(jnp.float32)
        if config.imagine_starts is not None:
            pick = jax.random.permutation(start_key, start_cont.shape[0])[: config.imagine_starts]
            start, start_cont = jax.tree.map(lambda x: x[pick], (start, start_cont))
        behaviour, ac_metrics = ac.ac_update(
            acfg,
            action_size,
            discrete,
            agent.behaviour,
            model,
            model_params,
            rssm.feature,
            ac_key,
            start,
            start_cont,
        )
        return DreamerState(model_params, behaviour), {**wm_metrics, **ac_metrics}

    metric_names = METRIC_NAMES

    def learn(agent, buffer, key):
        def one(agent, k):
            return update(agent, k, buffer)

        agent, metrics = jax.lax.scan(one, agent, jax.random.split(key, num_updates))
        return agent, jax.tree.map(jnp.mean, metrics)

    def skip(agent, buffer, key):
        return agent, {name: jnp.float32(0) for name in metric_names}

    def collect(run: RunState, size: int, key):
        carry = (run.agent, run.buffer, run.obs, run.env_state, run.latent, run.t)
        carry, metrics = jax.lax.scan(env_step, carry, jax.random.split(key, size))
        agent, buffer, obs, env_state, latent, t = carry
        return RunState(agent, buffer, obs, env_state, latent, t, run.loop_key), metrics

    def unit(run: RunState):
        # The unit's key is the run's key folded with its first step, so chunking
        # a run does not change its numbers.
        collect_key, learn_key = jax.random.split(jax.random.fold_in(run.loop_key, run.t))
        run, metrics = collect(run, config.collect_steps, collect_key)
        ready = (run.t >= config.learning_starts) & (run.buffer.size >= config.batch_length)
        agent, losses = jax.lax.cond(ready, learn, skip, run.agent, run.buffer, learn_key)
        losses = {**losses, "updates": ready.astype(jnp.int32) * num_updates}
        return run._replace(agent=agent), (metrics, losses)

    def finish(run: RunState, outs):
        metrics, losses = outs
        metrics = jax.tree.map(lambda m: m.reshape(-1), metrics)
        if remainder:
            run, tail = collect(run, remainder, jax.random.fold_in(run.loop_key, run.t))
            metrics = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), metrics, tail)
        return run, TrainOutput(metrics, losses, run.agent)

    def evaluate(run: RunState, key: PRNGKey, num_episodes: int = 10) -> EvalResult:
        return evaluate_policy(run.agent, key, num_episodes)

    def evaluate_policy(agent: DreamerState, key: PRNGKey, num_episodes: int) -> EvalResult:
        """The actor's mode, filtering with the posterior, in the real environment."""
        reset_key, latent_key, loop_key = jax.random.split(key, 3)
        params = agent.model.params
        obs, states = v_reset(jax.random.split(reset_key, num_episodes), env_params)
        latent = first_latent(params, latent_key, obs)

        def body(carry, step_key):
            obs, states, latent, alive, total, length = carry
            env_key, filter_key = jax.random.split(step_key)
            action = ac.sample_action(
                acfg,
                action_size,
                discrete,
                agent.behaviour.actor_params,
                step_key,
                rssm.feature(latent),
                deterministic=True,
            )
            obs, states, reward, terminated, truncated, _ = v_step(
                jax.random.split(env_key, num_episodes),
                states,
                to_env_action(spec, action),
                env_params,
            )
            last = terminated | truncated
            latent = filter_latent(mcfg, params, filter_key, latent, action, obs, last)
            total = total + alive * reward
            length = length + alive.astype(jnp.int32)
            alive = alive * (1.0 - last.astype(jnp.float32))
            return (obs, states, latent, alive, total, length), None

        ones = jnp.ones(num_episodes)
        zeros_i = jnp.zeros(num_episodes, jnp.int32)
        init = (obs, states, latent, ones, jnp.zeros(num_episodes), zeros_i)
        (*_, total, length), _ = jax.lax.scan(body, init, jax.random.split(loop_key, eval_cap))
        return EvalResult(total, length)

    return Chunked(
        init=init_run,
        unit=unit,
        finish=finish,
        num_units=num_units,
        unit_steps=config.collect_steps * n,
        final_steps=remainder * n,
        evaluate=evaluate,
        eval_note="the actor's mode on the posterior latent, real environment",
        stream=lambda outs: (outs[0].reward.reshape(-1), outs[0].done.reshape(-1)),
    )
