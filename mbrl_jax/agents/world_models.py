"""World Models (Ha & Schmidhuber, 2018): V, M and a controller C trained in M's dreams.

Each iteration of ``train(key)`` is one unit of the run:

1. collect ``num_steps // num_iterations`` real steps (uniformly random actions
   in the first iteration, then C's actions with probability ``1 - exploration``);
2. fit V (:mod:`mbrl_jax.models.vae`) on every observation so far;
3. fit M (:mod:`mbrl_jax.models.mdn_rnn`) on windows of encoded sequences;
4. run ``generations`` of CMA-ES (``evosax``) over C, a linear map of ``[z, h]``
   (discrete actions: argmax of its logits; continuous ones: ``tanh`` scaled to
   the action box). Each candidate's fitness is its mean return over
   ``num_rollouts`` dreams of ``horizon`` steps inside M at temperature
   ``tau``, started from encoded real reset observations and ended where M's
   termination head says so; population x rollouts are vmapped through
   :func:`mbrl_jax.core.rollout.rollout`;
5. evaluate C (the CMA-ES mean) in the real environment (not counted as
   training steps) and in the dream.

V and M are fine-tuned from the previous iteration's params and CMA-ES keeps
its state, so later iterations refine rather than restart. Every stage is a
``lax.scan``; ``jax.jit(jax.vmap(train))(keys)`` trains many seeds at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from evosax.algorithms import CMA_ES

from mbrl_jax.core.chunked import Chunked, EvalResult, as_train
from mbrl_jax.core.rollout import rollout
from mbrl_jax.core.types import Array, PRNGKey
from mbrl_jax.core.validation import check_range
from mbrl_jax.models import mdn_rnn as mdn
from mbrl_jax.models.vae import VAE, VAEConfig, VAEState, make_vae
from mbrl_jax.planners.shooting import ActionSpec


@dataclasses.dataclass(frozen=True)
class Config:
    """World Models settings (validated on construction); defaults for ``CartPole-v1``.

    With the defaults (9,000 real steps, 3 iterations) C's real return after the
    last iteration is 500 in 4 of 5 seeds and 175 in the fifth
    (``examples/world_models.py``).

    Attributes:
      num_steps: real environment steps of data collection per seed (the real
        evaluations are not counted).
      num_iterations: collect / fit / CMA-ES rounds; each collects
        ``num_steps // num_iterations`` steps, the first with random actions.
      exploration: probability of a uniformly random action when collecting with C.
      latent_size: V's ``L`` (4 for CartPole's 4-vector; the paper's 32 is for images).
      vae_hidden: width of V's MLP layers.
      kl_weight: weight of V's KL term.
      vae_updates: Adam steps of V per iteration.
      rnn_hidden: M's LSTM units.
      num_mixtures: M's Gaussians.
      mdn_updates: Adam steps of M per iteration.
      sequence_length: ``T`` of M's training windows.
      batch_size: V's observations and M's windows per update.
      learning_rate: Adam step size of V and M.
      population: CMA-ES candidates per generation, ``>= 2``.
      num_rollouts: dreams per candidate.
      generations: CMA-ES generations per iteration.
      horizon: steps of a dream (static).
      tau: M's sampling temperature in the dreams, ``> 0``.
      cma_std: CMA-ES's initial step size.
      num_eval_episodes: real evaluation episodes of C per iteration.
    """

    num_steps: int = 9_000
    num_iterations: int = 3
    exploration: float = 0.1
    latent_size: int = 4
    vae_hidden: int = 64
    kl_weight: float = 0.1
    vae_updates: int = 1000
    rnn_hidden: int = 64
    num_mixtures: int = 5
    mdn_updates: int = 2500
    sequence_length: int = 32
    batch_size: int = 64
    learning_rate: float = 1e-3
    population: int = 32
    num_rollouts: int = 16
    generations: int = 20
    horizon: int = 500
    tau: float = 1.0
    cma_std: float = 0.5
    num_eval_episodes: int = 8

    def __post_init__(self):
        check_range(self, "num_iterations", low=1)
        check_range(self, "num_steps", low=self.num_iterations * self.sequence_length)
        for name in (
            "latent_size", "vae_hidden", "vae_updates", "rnn_hidden", "num_mixtures",
            "mdn_updates", "sequence_length", "batch_size", "num_rollouts", "generations",
            "horizon", "num_eval_episodes",
        ):  # fmt: skip
            check_range(self, name, low=1)
        check_range(self, "population", low=2)
        check_range(self, "exploration", low=0.0, high=1.0)
        check_range(self, "kl_weight", low=0.0)
        for name in ("learning_rate", "tau", "cma_std"):
            check_range(self, name, low=0.0, low_open=True)

    @property
    def iteration_steps(self) -> int:
        return self.num_steps // self.num_iterations


class WorldModelParams(NamedTuple):
    """V's and M's state (:class:`~mbrl_jax.models.vae.VAEState`,
    :class:`~mbrl_jax.models.mdn_rnn.MDNState`)."""

    vae: VAEState
    mdn: mdn.MDNState


class Controller(NamedTuple):
    """C: ``action = f(weight.T @ [z, h] + bias)``; ``weight [L + H, A]``, ``bias [A]``."""

    weight: Array
    bias: Array


class Parts(NamedTuple):
    """The pieces of a World Models agent (:func:`make_parts`), usable on their own.

    Attributes:
      vae: V (:class:`~mbrl_jax.models.vae.VAE`).
      mdn_config: M's :class:`~mbrl_jax.models.mdn_rnn.MDNRNNConfig`.
      controller_init: ``() -> Controller`` of zeros.
      act: ``act(controller, z [L], h [H]) -> action`` for one state.
      dream_returns: ``dream_returns(wm_params, controllers [Pop, ...], key,
        starts [S, *obs], num_rollouts, horizon, tau) -> [Pop]``: each
        candidate's mean return over ``num_rollouts`` dreams (starts drawn from
        the ``S`` real reset observations, the same draws and keys for every
        candidate); ``num_rollouts`` and ``horizon`` static, ``tau`` may be traced.
      real_returns: ``real_returns(wm_params, controller, key, num_episodes) ->
        EvalResult`` of ``num_episodes`` real episodes (static), each up to the
        environment's episode limit.
      reset_observations: ``(key, n) -> [n, *obs]`` real reset observations (``n`` static).
    """

    vae: VAE
    mdn_config: mdn.MDNRNNConfig
    controller_init: Callable[[], Controller]
    act: Callable
    dream_returns: Callable
    real_returns: Callable
    reset_observations: Callable


def make_parts(config: Config, env, env_params) -> Parts:
    """V, M's config, C and the dream and real evaluations for ``env``."""
    obs_shape = tuple(env.observation_space(env_params).shape)
    spec = ActionSpec.from_space(env.action_space(env_params))
    vae = make_vae(
        VAEConfig(
            obs_shape=obs_shape,
            latent_size=config.latent_size,
            hidden_size=config.vae_hidden,
            kl_weight=config.kl_weight,
            learning_rate=config.learning_rate,
            batch_size=config.batch_size,
        )
    )
    mdn_config = mdn.MDNRNNConfig(
        latent_size=config.latent_size,
        action_size=spec.num_actions if spec.discrete else spec.dim,
        discrete_actions=spec.discrete,
        hidden_size=config.rnn_hidden,
        num_mixtures=config.num_mixtures,
        learning_rate=config.learning_rate,
    )
    outputs = mdn_config.action_size
    features = config.latent_size + config.rnn_hidden

    def controller_init():
        return Controller(jnp.zeros((features, outputs)), jnp.zeros((outputs,)))

    def act(controller, z, h):
        out = jnp.concatenate([z, h]) @ controller.weight + controller.bias
        if spec.discrete:
            return jnp.argmax(out).astype(jnp.int32)
        low, high = jnp.asarray(spec.low), jnp.asarray(spec.high)
        return low + 0.5 * (jnp.tanh(out) + 1.0) * (high - low)

    def reset_observations(key, n):
        return jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, n), env_params)[0]

    def dream_returns(wm, controllers, key, starts, num_rollouts, horizon, tau):
        model = mdn.mdn_rnn_model(mdn_config, tau)
        start_key, dream_key = jax.random.split(key)
        rows = jax.random.randint(start_key, (num_rollouts,), 0, starts.shape[0])
        z0 = vae.encode(wm.vae, starts[rows])[0]
        start = mdn.initial_state(mdn_config, z0)

        def one(controller):
            policy = lambda _k, s, _t: jax.vmap(act, (None, 0, 0))(controller, s.z, s.h)
            out = rollout(model, policy, wm.mdn, dream_key, start, horizon, keep_trajectory=False)
            return out.discounted_return.mean()

        return jax.vmap(one)(controllers)

    def real_returns(wm, controller, key, num_episodes):
        return _real_episodes(
            env, env_params, vae, mdn_config, act, wm, controller, key, num_episodes
        )

    return Parts(
        vae, mdn_config, controller_init, act, dream_returns, real_returns, reset_observations
    )


def controller_step(vae, mdn_config, act, wm, controller, obs, h, c):
    """C's action for ``obs`` and M's LSTM state after reading it: ``(action, h, c)``."""
    z = vae.encode(wm.vae, obs)[0]
    action = act(controller, z, h)
    h, c, _ = mdn.advance(mdn_config, wm.mdn.params, mdn.LatentState(z, h, c), action)
    return action, h, c


def _real_episodes(env, env_params, vae, mdn_config, act, wm, controller, key, num_episodes):
    num_steps = int(env_params.max_steps_in_episode)
    reset_key, loop_key = jax.random.split(key)
    obs, states = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(reset_key, num_episodes), env_params
    )
    zeros = jnp.zeros((num_episodes, mdn_config.hidden_size))
    policy = jax.vmap(
        lambda o, h, c: controller_step(vae, mdn_config, act, wm, controller, o, h, c)
    )
    keys = jax.random.split(loop_key, num_steps * num_episodes).reshape(num_steps, num_episodes)

    def body(carry, step_keys):
        obs, states, h, c, alive, total, length = carry
        action, h, c = policy(obs, h, c)
        obs, states, reward, terminated, truncated, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            step_keys, states, action, env_params
        )
        total = total + alive * reward
        length = length + alive.astype(jnp.int32)
        alive = alive * (1.0 - (terminated | truncated).astype(jnp.float32))
        return (obs, states, h, c, alive, total, length), None

    ones = jnp.ones(num_episodes)
    init = (obs, states, zeros, zeros, ones, 0.0 * ones, jnp.zeros(num_episodes, jnp.int32))
    (*_, total, length), _ = jax.lax.scan(body, init, keys)
    return EvalResult(total, length)


class StepMetrics(NamedTuple):
    """Per real step of data collection, ``[num_iterations * iteration_steps]`` each.

    Attributes:
      reward: the step's reward.
      done: True where the step ended an episode (termination or time limit).
    """

    reward: Array
    done: Array


class TrainOutput(NamedTuple):
    """Result of one World Models run (``I`` iterations, ``G`` generations each).

    Attributes:
      metrics: :class:`StepMetrics`.
      eval_returns: ``[I, num_eval_episodes]`` real returns of C after each iteration.
      eval_lengths: ``[I, num_eval_episodes]`` int32 their lengths.
      dream_return: ``[I]`` C's mean return in ``num_rollouts`` dreams at ``tau``.
      best_fitness: ``[I, G]`` best dream return of each CMA-ES generation
        (the return, higher is better; CMA-ES minimises its negative).
      vae_loss: ``[I]`` V's mean loss over the last quarter of its updates.
      mdn_loss: ``[I]`` M's mean loss over the last quarter of its updates.
      world_model: the final :class:`WorldModelParams`.
      controller: the final :class:`Controller` (the CMA-ES mean).
    """

    metrics: StepMetrics
    eval_returns: Array
    eval_lengths: Array
    dream_return: Array
    best_fitness: Array
    vae_loss: Array
    mdn_loss: Array
    world_model: WorldModelParams
    controller: Controller


class RunState(NamedTuple):
    """A run between iterations: keys, the real environment's carry, the data, V, M and CMA-ES."""

    key: PRNGKey
    iteration: Array
    obs: Array
    env_state: Any
    h: Array
    c: Array
    data: tuple
    world_model: WorldModelParams
    es_state: Any


def make_train(config: Config, env, env_params):
    """``train(key) -> TrainOutput``: :func:`make_chunked` in one call."""
    return as_train(make_chunked(config, env, env_params))


def make_chunked(config: Config, env, env_params) -> Chunked:
    """Builds the run: one collect / fit V / fit M / CMA-ES / evaluate iteration per unit.

    Raises:
      ValueError: bad settings or an environment whose observations are neither
        vectors nor ``[64, 64, C]`` images.
    """
    parts = make_parts(config, env, env_params)
    vae, mdn_config = parts.vae, parts.mdn_config
    spec = ActionSpec.from_space(env.action_space(env_params))
    steps = config.iteration_steps
    capacity = steps * config.num_iterations
    obs_shape = vae.config.obs_shape
    es = CMA_ES(population_size=config.population, solution=parts.controller_init())
    es_params = es.default_params.replace(std_init=jnp.float32(config.cma_std))

    def random_action(key):
        if spec.discrete:
            return jax.random.randint(key, (), 0, spec.num_actions)
        return jax.random.uniform(
            key, (spec.dim,), minval=jnp.asarray(spec.low), maxval=jnp.asarray(spec.high)
        )

    def init_run(key):
        key, vae_key, mdn_key, es_key, env_key = jax.random.split(key, 5)
        obs, env_state = env.reset(env_key, env_params)
        action = random_action(key)
        data = (
            jnp.zeros((capacity, *obs_shape)),
            jnp.zeros((capacity, *jnp.shape(action)), action.dtype),
            jnp.zeros(capacity),
            jnp.zeros((capacity, *obs_shape)),
            jnp.zeros(capacity, bool),
            jnp.zeros(capacity, bool),
        )
        wm = WorldModelParams(vae.init(vae_key), mdn.mdn_rnn_init(mdn_config, mdn_key))
        es_state = es.init(es_key, parts.controller_init(), es_params)
        zeros = jnp.zeros(mdn_config.hidden_size)
        return RunState(key, jnp.int32(0), obs, env_state, zeros, zeros, data, wm, es_state)

    def collect(state, key, controller):
        epsilon = jnp.where(state.iteration == 0, 1.0, config.exploration)
        wm = state.world_model

        def body(carry, step_key):
            obs, env_state, h, c = carry
            explore_key, random_key, env_key = jax.random.split(step_key, 3)
            action, h, c = controller_step(vae, mdn_config, parts.act, wm, controller, obs, h, c)
            explore = jax.random.uniform(explore_key) < epsilon
            action = jnp.where(explore, random_action(random_key), action)
            next_obs, env_state, reward, terminated, truncated, info = env.step(
                env_key, env_state, action, env_params
            )
            end = terminated | truncated
            h, c = jnp.where(end, 0.0, h), jnp.where(end, 0.0, c)
            record = (obs, action, reward, info["final_observation"], terminated, end)
            return (next_obs, env_state, h, c), record

        carry = (state.obs, state.env_state, state.h, state.c)
        carry, records = jax.lax.scan(body, carry, jax.random.split(key, steps))
        offset = state.iteration * steps
        data = tuple(
            jax.lax.dynamic_update_slice_in_dim(store, new.astype(store.dtype), offset, 0)
            for store, new in zip(state.data, records, strict=True)
        )
        return carry, data, records

    def fit_mdn(key, wm, data, count):
        obs, action, reward, next_obs, terminated, end = data
        z = vae.encode(wm.vae, obs)[0]
        next_z = vae.encode(wm.vae, next_obs)[0]
        length = config.sequence_length
        window = jnp.arange(length)

        def update(mdn_state, step_key):
            starts = jax.random.randint(step_key, (config.batch_size,), 0, count - length + 1)
            rows = starts[:, None] + window
            ends = end[rows].astype(jnp.int32)
            mask = (jnp.cumsum(ends, axis=1) - ends) == 0  # up to and including the first end
            batch = mdn.SequenceBatch(
                z[rows], action[rows], next_z[rows], reward[rows], terminated[rows], mask
            )
            mdn_state, (loss, _) = mdn.mdn_rnn_update(mdn_config, mdn_state, batch)
            return mdn_state, loss

        return jax.lax.scan(update, wm.mdn, jax.random.split(key, config.mdn_updates))

    def evolve(key, wm, es_state):
        """``generations`` CMA-ES generations, then one more evaluating only the mean.

        Every generation's dreams also score the current mean (one extra
        candidate), so the last, told nothing, gives the final C's dream return.
        """

        def generation(es_state, inputs):
            gen_key, tell = inputs
            ask_key, reset_key, dream_key, tell_key = jax.random.split(gen_key, 4)
            population, asked = es.ask(ask_key, es_state, es_params)
            candidates = jax.tree.map(
                lambda pop, mean: jnp.concatenate([pop, mean[None]]),
                population,
                es.get_mean(es_state),
            )
            starts = parts.reset_observations(reset_key, config.num_rollouts)
            returns = parts.dream_returns(
                wm, candidates, dream_key, starts, config.num_rollouts, config.horizon, config.tau
            )
            told, _ = es.tell(tell_key, population, -returns[:-1], asked, es_params)
            es_state = jax.tree.map(lambda a, b: jnp.where(tell, a, b), told, es_state)
            return es_state, (returns[:-1].max(), returns[-1])

        keys = jax.random.split(key, config.generations + 1)
        tells = jnp.arange(config.generations + 1) < config.generations
        es_state, (best, mean_return) = jax.lax.scan(generation, es_state, (keys, tells))
        return es_state, best[:-1], mean_return[-1]

    def unit(state: RunState):
        key, collect_key, vae_key, mdn_key, es_key, eval_key = jax.random.split(state.key, 6)
        controller = es.get_mean(state.es_state)
        carry, data, records = collect(state, collect_key, controller)
        count = (state.iteration + 1) * steps
        vae_state, vae_losses = vae.fit(
            state.world_model.vae, vae_key, data[0], count, config.vae_updates
        )
        wm = state.world_model._replace(vae=vae_state)
        mdn_state, mdn_losses = fit_mdn(mdn_key, wm, data, count)
        wm = wm._replace(mdn=mdn_state)
        es_state, best, dream = evolve(es_key, wm, state.es_state)
        controller = es.get_mean(es_state)
        result = parts.real_returns(wm, controller, eval_key, config.num_eval_episodes)
        quarter = lambda x: x[-max(1, x.shape[0] // 4) :].mean()  # noqa: E731
        new = RunState(key, state.iteration + 1, *carry, data, wm, es_state)
        _, _, reward, _, _, end = records
        out = (reward, end, result.returns, result.lengths, dream, best)
        return new, (*out, quarter(vae_losses), quarter(mdn_losses))

    def finish(state: RunState, outs):
        reward, end, returns, lengths, dream, best, vae_loss, mdn_loss = outs
        return state, TrainOutput(
            metrics=StepMetrics(reward.reshape(-1), end.reshape(-1)),
            eval_returns=returns,
            eval_lengths=lengths,
            dream_return=dream,
            best_fitness=best,
            vae_loss=vae_loss,
            mdn_loss=mdn_loss,
            world_model=state.world_model,
            controller=es.get_mean(state.es_state),
        )

    def evaluate(state, key, num_episodes=1):
        return parts.real_returns(state.world_model, es.get_mean(state.es_state), key, num_episodes)

    return Chunked(
        init=init_run,
        unit=unit,
        finish=finish,
        num_units=config.num_iterations,
        unit_steps=steps,
        evaluate=evaluate,
        eval_note="C (the CMA-ES mean) acting greedily in the real environment",
        stream=lambda outs: (outs[0].reshape(-1), outs[1].reshape(-1)),
    )
