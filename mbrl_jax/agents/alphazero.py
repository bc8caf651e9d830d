"""AlphaZero with a known model: the environment itself inside the search.

``train(key)`` alternates, inside one ``lax.scan`` over iterations:

1. self-play: ``num_envs`` environments step ``unroll_length`` times; at each
   step a batched search (:func:`mbrl_jax.planners.search.make_search`, Gumbel
   MuZero by default) from the environments' own states, with the
   environment as the model and the policy/value network at the leaves,
   chooses the actions;
2. learning: the network is trained on the search policies (cross-entropy)
   and n-step value targets bootstrapped from the search's root values (mean
   squared error on the ``h``-scaled value), ``num_epochs`` passes of
   minibatches over the fresh data.

Everything is one jitted function; ``jax.vmap`` over seeds works. The
self-play loop and the final evaluation are
:func:`mbrl_jax.agents.self_play.make_self_play_chunked`'s.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from mbrl_jax.agents.common import num_discrete_actions, vector_observation_shape
from mbrl_jax.agents.self_play import TrainOutput, make_self_play_chunked
from mbrl_jax.core.chunked import Chunked, as_train
from mbrl_jax.core.returns import n_step_targets
from mbrl_jax.core.validation import check_range
from mbrl_jax.models.networks import PolicyValueNet
from mbrl_jax.models.true_env import env_model
from mbrl_jax.models.value_transforms import h, h_inverse
from mbrl_jax.planners.search import SearchConfig, make_search

__all__ = ["Config", "TrainOutput", "make_chunked", "make_train"]


@dataclasses.dataclass(frozen=True)
class Config:
    """AlphaZero settings (validated on construction).

    Attributes:
      num_iterations: self-play + learning rounds.
      num_envs: environments playing in parallel.
      unroll_length: steps each environment takes per iteration.
      search: :class:`~mbrl_jax.planners.search.SearchConfig` (Gumbel MuZero, 16
        simulations by default).
      hidden: widths of the network's hidden layers.
      learning_rate, max_grad_norm: Adam settings.
      num_epochs: passes over each iteration's data.
      num_minibatches: minibatches per pass (``num_envs * unroll_length`` must divide).
      n_step: steps of the value targets before bootstrapping.
      value_coef: weight of the value loss.
      eval_envs: environments of the final evaluation (search without root
        noise, one episode each, at most ``eval_steps`` steps).
      eval_steps: step limit of the evaluation episodes.
    """

    num_iterations: int = 60
    num_envs: int = 32
    unroll_length: int = 64
    search: SearchConfig = dataclasses.field(
        default_factory=lambda: SearchConfig(num_simulations=16, policy="gumbel", discount=0.99)
    )
    hidden: tuple[int, ...] = (64, 64)
    learning_rate: float = 3e-4
    max_grad_norm: float = 1.0
    num_epochs: int = 4
    num_minibatches: int = 4
    n_step: int = 20
    value_coef: float = 0.5
    eval_envs: int = 16
    eval_steps: int = 500

    def __post_init__(self):
        for name in (
            "num_iterations",
            "num_envs",
            "unroll_length",
            "num_epochs",
            "num_minibatches",
            "n_step",
            "eval_envs",
            "eval_steps",
        ):
            check_range(self, name, low=1)
        check_range(self, "learning_rate", low=0.0, low_open=True)
        check_range(self, "value_coef", low=0.0)
        if (self.num_envs * self.unroll_length) % self.num_minibatches:
            raise ValueError(
                f"alphazero.Config: num_envs * unroll_length ({self.num_envs * self.unroll_length})"
                f" must be divisible by num_minibatches ({self.num_minibatches})"
            )


def make_train(config: Config, env, env_params, mesh=None):
    """``train(key) -> TrainOutput``: :func:`make_chunked` in one call."""
    return as_train(make_chunked(config, env, env_params, mesh))


def make_chunked(config: Config, env, env_params, mesh=None) -> Chunked:
    """Builds the run (one unit per self-play iteration) for a discrete-action gymnax
    environment; :func:`make_train` is ``train(key) -> TrainOutput`` of it.

    ``TrainOutput.losses`` holds ``loss``, ``policy_loss`` and ``value_loss``.

    ``mesh`` (optional, a :class:`jax.sharding.Mesh` with an ``"envs"`` axis,
    e.g. ``core.sharding.device_mesh(4, axis="envs")``) shards the
    environments over devices: data parallel acting and learning.

    Raises:
      ValueError: continuous actions, bad settings, or a mesh that does not fit.
    """
    c = config
    num_actions = num_discrete_actions(env, env_params)
    vector_observation_shape(env, env_params, "alphazero")
    network = PolicyValueNet(num_actions, c.hidden)
    obs_of = jax.vmap(lambda state: env.get_obs(state, env_params))

    def evaluate(params, key, states):
        logits, value = network.apply(params, obs_of(states))
        return logits, h_inverse(value)

    model = env_model(env, env_params)
    search = make_search(c.search, model, evaluate, num_actions)
    greedy_search = make_search(c.search.noiseless(), model, evaluate, num_actions)
    optimizer = optax.chain(optax.clip_by_global_norm(c.max_grad_norm), optax.adam(c.learning_rate))
    batch = c.num_envs * c.unroll_length
    minibatch = batch // c.num_minibatches

    def loss_fn(params, obs, policy, target):
        logits, value = network.apply(params, obs)
        policy_loss = optax.softmax_cross_entropy(logits, policy).mean()
        value_loss = 0.5 * jnp.mean((value - h(target)) ** 2)
        return policy_loss + c.value_coef * value_loss, (policy_loss, value_loss)

    def init(key, obs):
        params = network.init(key, obs)
        return params, optimizer.init(params)

    def act(agent, key, obs, states):
        result = search(None, agent[0], key, states)
        return result.action, {"policy": result.policy, "value": result.value}

    def sgd_step(carry, indices, data):
        params, opt_state = carry
        obs, policy, target = jax.tree.map(lambda x: x[indices], data)
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, obs, policy, target)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), (loss, *aux)

    def learn(agent, key, steps, truncated, last_obs, last_states):
        params, opt_state = agent
        last_value = evaluate(params, None, last_states)[1]
        final_value = h_inverse(network.apply(params, steps.next_state)[1])
        targets = n_step_targets(
            steps.reward,
            steps.done,
            truncated,
            steps.extras["value"],
            last_value,
            final_value,
            c.search.discount,
            c.n_step,
        )
        data = (
            steps.state.reshape(batch, *steps.state.shape[2:]),
            steps.extras["policy"].reshape(batch, num_actions),
            targets.reshape(batch),
        )
        order = jax.vmap(lambda k: jax.random.permutation(k, batch))(
            jax.random.split(key, c.num_epochs)
        ).reshape(c.num_epochs * c.num_minibatches, minibatch)
        (params, opt_state), (loss, p_loss, v_loss) = jax.lax.scan(
            lambda carry, idx: sgd_step(carry, idx, data), (params, opt_state), order
        )
        losses = {"loss": loss.mean(), "policy_loss": p_loss.mean(), "value_loss": v_loss.mean()}
        return (params, opt_state), losses

    return make_self_play_chunked(
        env,
        env_params,
        c,
        init=init,
        act=act,
        learn=learn,
        greedy_act=lambda params, key, obs, states: greedy_search(None, params, key, states).action,
        params_of=lambda agent: agent[0],
        mesh=mesh,
    )
