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

Everything is one jitted function; ``jax.vmap`` over seeds works.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from mbrl_jax.agents.common import check_range
from mbrl_jax.agents.mcts import num_discrete_actions
from mbrl_jax.agents.targets import completed_returns, evaluate_episodes, n_step_targets
from mbrl_jax.models.true_env import env_model_step
from mbrl_jax.models.value_transforms import h, h_inverse
from mbrl_jax.planners.search import SearchConfig, make_search
from mbrl_jax.types import Array, PRNGKey


class PolicyValueNet(nn.Module):
    """MLP torso with a policy head (``[..., A]`` logits) and a value head (``[...]``, h-scaled)."""

    num_actions: int
    hidden: Sequence[int] = (64, 64)

    @nn.compact
    def __call__(self, obs):
        x = obs.reshape(*obs.shape[: obs.ndim - 1], -1).astype(jnp.float32)
        for width in self.hidden:
            x = nn.relu(nn.LayerNorm()(nn.Dense(width)(x)))
        logits = nn.Dense(self.num_actions, kernel_init=nn.initializers.zeros)(x)
        value = nn.Dense(1, kernel_init=nn.initializers.zeros)(x)[..., 0]
        return logits, value


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


class TrainOutput(NamedTuple):
    """Result of one run.

    Attributes:
      reward, done: ``[num_iterations * unroll_length]`` per-step reward and
        episode end of environment 0 (the stream the comparison runner reads).
      mean_return: ``[num_iterations]`` mean return of the episodes that ended in
        each iteration, over all environments (NaN if none did).
      loss, policy_loss, value_loss: ``[num_iterations]`` mean training losses.
      eval_return: ``[eval_envs]`` returns of the final evaluation episodes.
      params: final network params.
    """

    reward: Array
    done: Array
    mean_return: Array
    loss: Array
    policy_loss: Array
    value_loss: Array
    eval_return: Array
    params: dict


def make_train(config: Config, env, env_params):
    """Builds ``train(key) -> TrainOutput`` for a discrete-action gymnax environment.

    Raises:
      ValueError: continuous actions, or bad settings.
    """
    c = config
    num_actions = num_discrete_actions(env, env_params)
    network = PolicyValueNet(num_actions, c.hidden)
    obs_of = jax.vmap(lambda state: env.get_obs(state, env_params))

    def evaluate(params, key, states):
        logits, value = network.apply(params, obs_of(states))
        return logits, h_inverse(value)

    model_step = env_model_step(env, env_params)
    search = make_search(c.search, model_step, evaluate, num_actions)
    greedy_search = make_search(c.search.noiseless(), model_step, evaluate, num_actions)
    optimizer = optax.chain(optax.clip_by_global_norm(c.max_grad_norm), optax.adam(c.learning_rate))
    step_env = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    reset_env = jax.vmap(env.reset, in_axes=(0, None))
    batch = c.num_envs * c.unroll_length
    minibatch = batch // c.num_minibatches

    def loss_fn(params, obs, policy, target):
        logits, value = network.apply(params, obs)
        policy_loss = optax.softmax_cross_entropy(logits, policy).mean()
        value_loss = 0.5 * jnp.mean((value - h(target)) ** 2)
        return policy_loss + c.value_coef * value_loss, (policy_loss, value_loss)

    def train(key: PRNGKey) -> TrainOutput:
        init_key, reset_key, loop_key, eval_key = jax.random.split(key, 4)
        obs, states = reset_env(jax.random.split(reset_key, c.num_envs), env_params)
        params = network.init(init_key, obs)
        opt_state = optimizer.init(params)

        def act(carry, step_key):
            states, params = carry
            search_key, env_key = jax.random.split(step_key)
            result = search(params, search_key, states)
            obs = obs_of(states)
            _, next_states, reward, terminated, truncated, info = step_env(
                jax.random.split(env_key, c.num_envs), states, result.action, env_params
            )
            record = (obs, result.policy, result.value, reward, terminated, truncated)
            return (next_states, params), record + (info["final_observation"],)

        def sgd_step(carry, indices, data):
            params, opt_state = carry
            obs, policy, target = jax.tree.map(lambda x: x[indices], data)
            (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                params, obs, policy, target
            )
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), (loss, *aux)

        def iteration(carry, key):
            params, opt_state, states, running = carry
            play_key, learn_key = jax.random.split(key)
            (states, _), (obs, policy, values, rewards, term, trunc, final_obs) = jax.lax.scan(
                act, (states, params), jax.random.split(play_key, c.unroll_length)
            )
            last_value = evaluate(params, None, states)[1]
            final_value = h_inverse(network.apply(params, final_obs)[1])
            targets = n_step_targets(
                rewards, term, trunc, values, last_value, final_value, c.search.discount, c.n_step
            )
            done = term | trunc
            _, mean_return, running = completed_returns(rewards, done, running)
            data = (
                obs.reshape(batch, *obs.shape[2:]),
                policy.reshape(batch, num_actions),
                targets.reshape(batch),
            )
            order = jax.vmap(lambda k: jax.random.permutation(k, batch))(
                jax.random.split(learn_key, c.num_epochs)
            ).reshape(c.num_epochs * c.num_minibatches, minibatch)
            (params, opt_state), (loss, p_loss, v_loss) = jax.lax.scan(
                lambda carry, idx: sgd_step(carry, idx, data), (params, opt_state), order
            )
            out = (
                rewards[:, 0],
                done[:, 0],
                mean_return,
                loss.mean(),
                p_loss.mean(),
                v_loss.mean(),
            )
            return (params, opt_state, states, running), out

        (params, *_), (reward, done, mean_return, loss, p_loss, v_loss) = jax.lax.scan(
            iteration,
            (params, opt_state, states, jnp.zeros(c.num_envs)),
            jax.random.split(loop_key, c.num_iterations),
        )
        eval_return = evaluate_episodes(
            lambda p, k, obs, states: greedy_search(p, k, states).action,
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
            eval_return=eval_return,
            params=params,
        )

    return train
