"""k-step compounding error of any :class:`~mbrl_jax.core.types.Model`.

From real start states the model is rolled out open loop under the real
action sequence (:func:`mbrl_jax.core.rollout.rollout`, ``S`` samples per
start for a stochastic model), and its states after ``k = 1..K`` steps are
compared with the real ones: squared error per state dimension and for the
reward, and the Gaussian negative log-likelihood of the real state under the
samples' mean and variance (``S >= 2``). :func:`growth` answers "linear or
exponential?" by fitting both to the error curve.

Shape letters: N start states, K steps, S samples, D state dimensions.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from mbrl_jax.core.rollout import rollout
from mbrl_jax.core.types import Array, Model, PRNGKey
from mbrl_jax.core.validation import check_int_value


class Windows(NamedTuple):
    """``N`` real trajectory pieces of ``K`` steps with no episode end inside
    (the last step may end one).

    Attributes:
      observations: ``[N, K + 1, D]``: the start state, then each next state.
      actions: ``[N, K, ...]``.
      rewards: ``[N, K]``.
    """

    observations: Array
    actions: Array
    rewards: Array


def windows(observations, actions, rewards, next_observations, dones, k: int) -> Windows:
    """Every ``k``-step window of one recorded stream of transitions that stays
    inside one episode, with NaN rows left out.

    Args:
      observations, next_observations: ``[T, D]`` state before and after each step.
      actions: ``[T, ...]``; rewards ``[T]``; dones ``[T]`` (terminated or
        truncated: the step ended its episode).
      k: window length, ``1 <= k <= T``.

    Returns:
      :class:`Windows` of the ``N`` valid windows (NumPy; host side).

    Raises:
      ValueError: ``k`` outside ``[1, T]``, or no window fits.
    """
    obs = np.asarray(observations)
    nxt = np.asarray(next_observations)
    act = np.asarray(actions)
    rew = np.asarray(rewards, np.float32)
    done = np.asarray(dones, bool)
    t = obs.shape[0]
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= t:
        raise ValueError(f"windows: k must be an integer in [1, {t}] (the steps recorded), got {k}")
    finite = np.isfinite(obs).all(-1) & np.isfinite(nxt).all(-1) & np.isfinite(rew)
    finite &= np.isfinite(act.reshape(t, -1).astype(np.float64)).all(-1)
    # Counts over sliding windows: an episode end before a window's last step,
    # or a non-finite row anywhere in it, rules the window out.
    ends = np.concatenate([[0], np.cumsum(done)])
    bad = np.concatenate([[0], np.cumsum(~finite)])
    first = np.arange(t - k + 1)
    ok = (ends[first + k - 1] == ends[first]) & (bad[first + k] == bad[first])
    starts = first[ok]
    if not starts.size:
        raise ValueError(
            f"windows: no {k}-step window without an episode end or a non-finite value "
            f"in {t} steps; lower k"
        )
    idx = starts[:, None] + np.arange(k)[None]
    window_obs = np.concatenate([obs[idx[:, 0]][:, None], nxt[idx]], axis=1)
    return Windows(window_obs, act[idx], rew[idx])


class CompoundingError(NamedTuple):
    """Open-loop error of a model after ``k = 1..K`` steps.

    Attributes:
      mse: ``[K, D]`` mean over starts and samples of the squared state error.
      mse_mean: ``[K]`` ``mse`` averaged over the dimensions.
      reward_mse: ``[K]`` squared reward error.
      nll: ``[K, D]`` Gaussian NLL of the real state under the samples' mean
        and variance (NaN with one sample).
      alive: ``[K]`` fraction of rollouts the model had not terminated by step k
        (later steps of a terminated rollout are not counted).
      mean_mse: ``[K]`` squared error of the samples' mean (the model's point
        prediction, averaged over dimensions; equal to ``mse_mean`` with one
        sample). ``mse_mean`` also counts the samples' spread.
    """

    mse: Array
    mse_mean: Array
    reward_mse: Array
    nll: Array
    alive: Array
    mean_mse: Array


def compounding_error(
    model: Model, params, key: PRNGKey, data: Windows, num_samples: int = 1
) -> CompoundingError:
    """Rolls ``model`` out from ``data``'s start states under its actions; see the module doc.

    Pure and jittable (``num_samples`` static): ``jax.jit(compounding_error,
    static_argnums=(0, 4))`` runs thousands of starts in one call.
    """
    obs = jnp.asarray(data.observations, jnp.float32)
    actions = jnp.asarray(data.actions)
    n, horizon = actions.shape[0], actions.shape[1]
    check_int_value("compounding_error: num_samples", num_samples, low=1)
    start = jnp.repeat(obs[:, 0], num_samples, axis=0)  # [N * S, D]
    acts = jnp.repeat(actions, num_samples, axis=0)  # [N * S, K, ...]

    def policy(_key, _states, t):
        return acts[:, t]

    out = rollout(model, policy, params, key, start, horizon)
    predicted = jnp.concatenate([out.states[1:], out.final_state[None]], axis=0)  # [K, NS, D]
    predicted = predicted.reshape(horizon, n, num_samples, -1)
    real = jnp.swapaxes(obs[:, 1:], 0, 1)[:, :, None]  # [K, N, 1, D]
    # A step counts while the rollout is alive before it (its own step included).
    alive = out.mask.reshape(horizon, n, num_samples)
    weight = alive[..., None]
    count = jnp.maximum(alive.sum(axis=(1, 2)), 1.0)[:, None]
    mse = (weight * (predicted - real) ** 2).sum(axis=(1, 2)) / count
    rewards = out.rewards.reshape(horizon, n, num_samples)
    real_r = jnp.swapaxes(jnp.asarray(data.rewards, jnp.float32), 0, 1)[:, :, None]
    reward_mse = (alive * (rewards - real_r) ** 2).sum(axis=(1, 2)) / count[:, 0]
    # The samples' mean, over the samples alive at each step.
    w = alive[..., None]
    live = w.sum(axis=2)
    mean = (w * predicted).sum(axis=2) / jnp.maximum(live, 1.0)
    start_alive = live[..., 0] > 0
    mean_mse = (start_alive[..., None] * (mean - real[:, :, 0]) ** 2).sum(axis=1) / jnp.maximum(
        start_alive.sum(axis=1), 1.0
    )[:, None]
    if num_samples > 1:
        mean = predicted.mean(axis=2)
        var = predicted.var(axis=2) + 1e-6
        nll = 0.5 * (jnp.log(2 * jnp.pi * var) + (real[:, :, 0] - mean) ** 2 / var).mean(axis=1)
    else:
        nll = jnp.full_like(mse, jnp.nan)
    return CompoundingError(
        mse, mse.mean(axis=-1), reward_mse, nll, alive.mean(axis=(1, 2)), mean_mse.mean(axis=-1)
    )


class Growth(NamedTuple):
    """Fits of an error curve ``e_k``, ``k = 1..K``.

    Attributes:
      linear_slope: ``m`` of ``e_k ~ c + m k``; ``linear_r2``: its R^2.
      exp_rate: ``b`` of ``log e_k ~ a + b k`` (error multiplied by ``e^b`` a
        step; least squares weighted by ``sqrt(e_k)``); ``exp_r2``: its R^2 on
        ``e_k`` (not on the log).
      kind: ``"exponential"`` or ``"linear"``, whichever fits ``e_k`` better.
    """

    linear_slope: float
    linear_r2: float
    exp_rate: float
    exp_r2: float
    kind: str


def growth(errors) -> Growth:
    """Fits a linear and an exponential curve to ``errors [K]`` (``K >= 3``, positive).

    Raises:
      ValueError: fewer than 3 points, or a non-finite or non-positive error.
    """
    e = np.asarray(errors, np.float64)
    if e.ndim != 1 or e.size < 3 or not np.all(np.isfinite(e)) or np.any(e <= 0):
        raise ValueError(f"growth: needs >= 3 finite positive errors, got {e.tolist()}")
    k = np.arange(1, e.size + 1, dtype=np.float64)
    total = np.sum((e - e.mean()) ** 2) or 1.0
    m, c = np.polyfit(k, e, 1)
    lin_r2 = 1 - np.sum((e - (c + m * k)) ** 2) / total
    # Weighted by sqrt(e): the log fit otherwise follows the small early errors.
    b, a = np.polyfit(k, np.log(e), 1, w=np.sqrt(e))
    exp_r2 = 1 - np.sum((e - np.exp(a + b * k)) ** 2) / total
    kind = "exponential" if exp_r2 > lin_r2 else "linear"
    return Growth(float(m), float(lin_r2), float(b), float(exp_r2), kind)


__all__ = ["CompoundingError", "Growth", "Windows", "compounding_error", "growth", "windows"]
