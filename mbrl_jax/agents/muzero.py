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
2. stores the steps (:class:`~mbrl_jax.core.types.Transition` items whose
   ``extras`` hold their search policies and the parts of their n-step value
   targets: discounted rewards, bootstrap discount and observation) in the
   trajectory replay buffer of :mod:`mbrl_jax.core.replay`;
3. takes ``updates_per_iteration`` gradient steps on ``K``-step unrolls sampled
   from the buffer. Value targets are recomputed for every sample with the
   networks as they were at the start of the iteration (a target network that
   also "reanalyses" old data, so stale bootstrap values do not linger in the
   buffer). The loss sums policy, value and reward cross-entropies at each of the
   ``K + 1`` positions, the dynamics' gradient halved at each step. Positions
   past the end of an episode train towards an absorbing state (zero reward
   and value, no policy loss).

The networks are :class:`~mbrl_jax.models.networks.MuZeroNet`, the latent
model :func:`~mbrl_jax.models.latent.muzero_model`, the self-play loop
:func:`mbrl_jax.agents.self_play.make_self_play_chunked`'s.

Shape letters: N environments, B batch, K unroll steps, A actions, L latent size.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from mbrl_jax.agents.common import num_discrete_actions, vector_observation_shape
from mbrl_jax.agents.self_play import TrainOutput, make_self_play_chunked
from mbrl_jax.core.chunked import Chunked, as_train
from mbrl_jax.core.replay import (
    trajectory_buffer_add,
    trajectory_buffer_init,
    trajectory_buffer_sample,
)
from mbrl_jax.core.returns import n_step_bootstrap
from mbrl_jax.core.types import Transition
from mbrl_jax.core.validation import check_range
from mbrl_jax.models.latent import muzero_evaluator, muzero_model
from mbrl_jax.models.networks import MuZeroNet
from mbrl_jax.models.value_transforms import h, scalar_to_support
from mbrl_jax.planners.search import SearchConfig, make_search

__all__ = ["Config", "TrainOutput", "make_chunked", "make_train"]


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
        check_range(self, "max_grad_norm", low=0.0, low_open=True)
        check_range(self, "value_coef", low=0.0)
        check_range(self, "buffer_size", low=1)
        if self.buffer_size < self.unroll_length + self.unroll_steps:
            raise ValueError(
                f"muzero.Config.buffer_size ({self.buffer_size}) must be >= unroll_length + "
                f"unroll_steps ({self.unroll_length + self.unroll_steps})"
            )


def _scale_gradient(x, scale: float):
    return x * scale + jax.lax.stop_gradient(x) * (1.0 - scale)


def make_train(config: Config, env, env_params, mesh=None):
    """``train(key) -> TrainOutput``: :func:`make_chunked` in one call."""
    return as_train(make_chunked(config, env, env_params, mesh))


def make_chunked(config: Config, env, env_params, mesh=None) -> Chunked:
    """Builds the run (one unit per self-play iteration) for a discrete-action gymnax
    environment; :func:`make_train` is ``train(key) -> TrainOutput`` of it.

    ``TrainOutput.losses`` holds ``loss``, ``policy_loss``, ``value_loss`` and
    ``reward_loss``.

    ``mesh`` (optional, a :class:`jax.sharding.Mesh` with an ``"envs"`` axis,
    e.g. ``core.sharding.device_mesh(4, axis="envs")``) shards the
    environments over devices: data parallel acting and learning.

    Raises:
      ValueError: continuous actions, bad settings, or a mesh that does not fit.
    """
    c = config
    num_actions = num_discrete_actions(env, env_params)
    obs_shape = vector_observation_shape(env, env_params, "muzero")
    net = MuZeroNet(num_actions, c.latent_size, c.hidden, c.support_size, c.reward_support_size)
    evaluate = muzero_evaluator(net)

    def represent(params, obs):
        return net.apply(params, obs, method=MuZeroNet.represent)

    optimizer = optax.chain(optax.clip_by_global_norm(c.max_grad_norm), optax.adam(c.learning_rate))
    k = c.unroll_steps

    def value_of(params, obs):
        return evaluate(params, None, represent(params, obs))[1]

    def loss_fn(params, target_params, window, valid_mask):
        valid = valid_mask.astype(jnp.float32)  # [B, K+1]
        extras = window.extras
        latent = net.apply(params, window.state[:, 0], method=MuZeroNet.represent)
        boot_value = jax.lax.stop_gradient(value_of(target_params, extras["boot_obs"]))
        target = extras["partial"] + extras["boot_discount"] * boot_value
        value_target = scalar_to_support(h(target * valid), c.support_size)
        reward_target = scalar_to_support(
            h(window.reward * valid), c.reward_support_size
        )  # reward of step t + j, predicted by the j + 1-th dynamics step
        policy_loss = value_loss = reward_loss = 0.0
        # The K + 1 positions unroll in Python: K is small and static, and each
        # position has its own targets and gradient scaling.
        for j in range(k + 1):
            logits, value_logits = net.apply(params, latent, method=MuZeroNet.predict)
            policy_loss += jnp.mean(
                valid[:, j] * optax.softmax_cross_entropy(logits, extras["policy"][:, j])
            )
            value_loss += jnp.mean(optax.softmax_cross_entropy(value_logits, value_target[:, j]))
            if j < k:
                # Any action keeps an absorbing state absorbing.
                action = jnp.where(valid_mask[:, j], window.action[:, j], 0)
                latent, reward_logits = net.apply(params, latent, action, method=MuZeroNet.dynamics)
                reward_loss += jnp.mean(
                    optax.softmax_cross_entropy(reward_logits, reward_target[:, j])
                )
                latent = _scale_gradient(latent, 0.5)
        scale = 1.0 / (k + 1)
        total = scale * (policy_loss + c.value_coef * value_loss + reward_loss)
        return total, (scale * policy_loss, scale * value_loss, scale * reward_loss)

    model = muzero_model(net, obs_shape)
    search = make_search(c.search, model, evaluate, num_actions)
    greedy_search = make_search(c.search.noiseless(), model, evaluate, num_actions)

    def init(key, obs):
        params = model.init(key)
        example = Transition(
            state=obs[0],
            action=jnp.int32(0),
            reward=jnp.float32(0),
            next_state=obs[0],
            done=jnp.bool_(False),
            extras={
                "policy": jnp.zeros(num_actions),
                "partial": jnp.float32(0),
                "boot_discount": jnp.float32(0),
                "boot_obs": obs[0],
            },
        )
        buffer = trajectory_buffer_init(example, c.buffer_size, c.num_envs)
        return params, optimizer.init(params), buffer

    def act(agent, key, obs, states):
        params = agent[0]
        result = search(params, params, key, represent(params, obs))
        return result.action, {"policy": result.policy}

    def sgd_step(carry, step_key):
        params, opt_state, buffer, target_params = carry
        window, valid = trajectory_buffer_sample(buffer, step_key, c.batch_size, k + 1)
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, target_params, window, valid
        )
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return (params, opt_state, buffer, target_params), (loss, *aux)

    def learn(agent, key, steps, truncated, last_obs, last_states):
        params, opt_state, buffer = agent
        partial, boot_discount, boot_index = n_step_bootstrap(
            steps.reward, steps.done, truncated, c.search.discount, c.n_step
        )
        boot_obs = jnp.take_along_axis(
            steps.next_state, boot_index.reshape(*boot_index.shape, *[1] * len(obs_shape)), axis=0
        )
        extras = {
            "policy": steps.extras["policy"],
            "partial": partial,
            "boot_discount": boot_discount,
            "boot_obs": boot_obs,
        }
        # A truncated episode's last step is stored as an end too: the next
        # stored step belongs to a new episode.
        stored = steps._replace(done=steps.done | truncated, extras=extras)
        buffer = trajectory_buffer_add(buffer, stored)
        # Value targets are recomputed with the iteration's start networks.
        (params, opt_state, buffer, _), losses = jax.lax.scan(
            sgd_step,
            (params, opt_state, buffer, params),
            jax.random.split(key, c.updates_per_iteration),
        )
        names = ("loss", "policy_loss", "value_loss", "reward_loss")
        return (params, opt_state, buffer), {
            n: x.mean() for n, x in zip(names, losses, strict=True)
        }

    def greedy_act(params, key, obs, states):
        return greedy_search(params, params, key, represent(params, obs)).action

    return make_self_play_chunked(
        env,
        env_params,
        c,
        init=init,
        act=act,
        learn=learn,
        greedy_act=greedy_act,
        params_of=lambda agent: agent[0],
        mesh=mesh,
    )
