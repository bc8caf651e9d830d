"""Validation of a learned dynamics model on real transitions: one-step error
and K-fold cross-validation of its fit.

:func:`one_step_error` scores a fitted model on a batch of real transitions:
the squared error of its predictive mean and the Gaussian negative
log-likelihood of the real next observation (and reward, when the model
learns it) under its predictive mean and *total* variance (aleatoric plus
epistemic). It works on any model with an ``Ensemble``-like interface — a
``config`` (``obs_dim``, ``learn_reward``) and ``predict(state, obs, action)``
returning ``mean``, ``aleatoric_var`` and ``epistemic_var`` — so ensembles, MC
dropout and Bayesian MLPs are scored the same way.

Hold-out vs K-fold. A hold-out estimate fits once on part of the data and
scores the rest: call :func:`one_step_error` on transitions the fit never saw
(there is no separate ``holdout_error``; that call *is* it). It is cheap but
rests on one split, so it is noisy on small data sets. :func:`cross_validate`
splits the data into ``F`` folds, fits a fresh model on every ``F - 1`` of
them and scores the fold left out: every transition is held out exactly once,
and the spread over folds (``mse_std``, ``nll_std``) says how much one
hold-out number can be trusted. All folds run as one compiled program
(``jax.vmap`` over folds), so ``F`` folds cost one compile.

Policy-aware validation. A model is only as good as it is where the planner
takes it: its error on the current policy's state-action distribution can
differ widely from its error on random-action data. Scoring the same model
with :func:`one_step_error` on transitions collected by the current policy and
on transitions collected with random actions tells the two apart (a model fit
on random data often looks good there and poor on-policy).

Rows holding NaN or inf (in the state, action, next state, or the reward when
it is learned) are left out and counted, as :meth:`Ensemble.fit` does.

Shape letters: N transitions, D observation size, out = D (+1 with a learned
reward, last), F folds.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from mbrl_jax.core.replay import ReplayBuffer
from mbrl_jax.core.types import Array, PRNGKey, Transition
from mbrl_jax.core.validation import check_int_value

__all__ = ["CrossValidation", "OneStepError", "cross_validate", "one_step_error"]


class OneStepError(NamedTuple):
    """One-step prediction error of a model on ``N`` real transitions.

    Attributes:
      mse: ``[out]`` mean over the used rows of the squared error of the
        predictive mean, per output (the next observation's ``D`` entries, then
        the reward when ``config.learn_reward``).
      mse_mean: ``[]`` mean of ``mse`` over the outputs.
      nll: ``[out]`` mean Gaussian negative log-likelihood of the real targets
        under ``N(mean, aleatoric_var + epistemic_var)``.
      nll_mean: ``[]`` mean of ``nll`` over the outputs.
      num_used: ``[]`` int32 rows scored (finite state, action, next state and,
        when learned, reward). With none, every error is NaN.
    """

    mse: Array
    mse_mean: Array
    nll: Array
    nll_mean: Array
    num_used: Array


class CrossValidation(NamedTuple):
    """K-fold cross-validation of a model's fit.

    Attributes:
      fold_mse: ``[F]`` held-out :attr:`OneStepError.mse_mean` of each fold's model.
      fold_nll: ``[F]`` held-out :attr:`OneStepError.nll_mean` of each fold's model.
      mse_mean, mse_std: ``[]`` mean and standard deviation (``ddof=1``) of
        ``fold_mse`` over the folds.
      nll_mean, nll_std: ``[]`` the same of ``fold_nll``.
      fold_sizes: ``[F]`` int32 held-out rows of each fold; they sum to
        ``num_used``. A fold with none (fewer valid rows than folds) scores
        NaN, and so do the means and spreads.
      num_used: ``[]`` int32 valid rows (those without NaN or inf).
    """

    fold_mse: Array
    fold_nll: Array
    mse_mean: Array
    mse_std: Array
    nll_mean: Array
    nll_std: Array
    fold_sizes: Array
    num_used: Array


# ----------------------------------------------------------------------------- helpers
def _check_data(name: str, model: Any, data: Transition) -> int:
    """Static shape checks; returns ``N``."""
    config = model.config
    state = jnp.shape(data.state)
    if len(state) != 2 or state[-1] != config.obs_dim:
        raise ValueError(
            f"{name}: data.state must have shape [N, obs_dim={config.obs_dim}], got {state}"
        )
    n = state[0]
    if jnp.shape(data.next_state) != state:
        raise ValueError(
            f"{name}: data.next_state {jnp.shape(data.next_state)} must have the shape "
            f"of data.state {state}"
        )
    action = jnp.shape(data.action)
    if not action or action[0] != n:
        raise ValueError(f"{name}: data.action must have leading size N={n}, got {action}")
    if config.learn_reward and jnp.shape(data.reward) != (n,):
        raise ValueError(
            f"{name}: data.reward must have shape [N={n}] when the model learns the reward, "
            f"got {jnp.shape(data.reward)}"
        )
    return n


def _rows_finite(config, data: Transition) -> Array:
    """``[N]`` bool: every scored entry of the row is finite."""
    n = data.state.shape[0]
    ok = jnp.all(jnp.isfinite(data.state), -1) & jnp.all(jnp.isfinite(data.next_state), -1)
    ok &= jnp.all(jnp.isfinite(data.action).reshape(n, -1), -1)
    if config.learn_reward:
        ok &= jnp.isfinite(data.reward)
    return ok


def _one_step_error(model, state, data: Transition, mask: Array) -> OneStepError:
    """:func:`one_step_error` over the rows where ``mask [N]`` holds (and that are finite)."""
    config = model.config
    valid = mask & _rows_finite(config, data)
    # Invalid rows predict from zeros, so no NaN enters the model at all.
    obs = jnp.where(valid[:, None], data.state, 0.0)
    action = jnp.where(valid.reshape(-1, *([1] * (data.action.ndim - 1))), data.action, 0)
    action = action.astype(data.action.dtype)
    target = data.next_state
    if config.learn_reward:
        target = jnp.concatenate([target, data.reward[:, None]], axis=-1)
    pred = model.predict(state, obs, action)
    mean = pred["mean"]
    var = pred["aleatoric_var"] + pred["epistemic_var"]
    w = valid[:, None]
    count = valid.sum()
    # A model that predicts NaN or a variance <= 0 on a valid row is not hidden:
    # its error reads NaN.
    safe_var = jnp.where(w, var, 1.0)
    sq = jnp.where(w, (target - mean) ** 2, 0.0)
    nll = jnp.where(w, 0.5 * (jnp.log(2 * jnp.pi * safe_var) + sq / safe_var), 0.0)
    mse = sq.sum(0) / count  # NaN with no row
    nll = nll.sum(0) / count
    return OneStepError(mse, mse.mean(), nll, nll.mean(), count.astype(jnp.int32))


_one_step_error_jit = jax.jit(_one_step_error, static_argnums=0)


def one_step_error(model, state, data: Transition) -> OneStepError:
    """One-step error of ``model`` on a batch of real transitions.

    The predictive mean and total variance (``aleatoric_var + epistemic_var``
    of ``model.predict``) of the next observation, and of the reward when
    ``model.config.learn_reward``, against the real ones. Rows holding NaN or
    inf are left out and counted (``num_used``). On transitions the model was
    not fit on, this is the hold-out error.

    Args:
      model: an :class:`~mbrl_jax.models.ensemble.Ensemble`, or any object with
        its ``config`` (``obs_dim``, ``learn_reward``) and
        ``predict(state, obs, action) -> {"mean", "aleatoric_var", "epistemic_var"}``
        (``[N, out]`` each, next observations not changes).
      state: the model's state (params).
      data: :class:`~mbrl_jax.core.types.Transition` with ``state [N, D]``,
        ``action [N, ...]``, ``next_state [N, D]`` and ``reward [N]``.

    Returns:
      :class:`OneStepError`.

    Raises:
      ValueError: ``data`` shapes that do not fit the model or each other.
    """
    n = _check_data("one_step_error", model, data)
    return _one_step_error_jit(model, state, data, jnp.ones((n,), bool))


def predictive(model, state, data: Transition) -> tuple[Array, Array, Array]:
    """``(mean, var, target)``, each ``[N, out]``: the model's predictive
    Gaussian of the next observation (and reward, where learned) and the real
    values, ready for :func:`~mbrl_jax.diagnostics.calibration.calibration`.

    Raises:
      ValueError: a model without a predictive variance (mean-squared-error
        heads and one member: ``probabilistic=False``, ``ensemble_size=1``),
        or ``data`` shapes that do not fit it.
    """
    config = model.config
    if not config.probabilistic and config.ensemble_size == 1:
        raise ValueError(
            "predictive: the model has no predictive variance (probabilistic=False with "
            "ensemble_size=1); calibration needs Gaussian heads or several members"
        )
    _check_data("predictive", model, data)
    pred = model.predict(state, data.state, data.action)
    target = data.next_state
    if config.learn_reward:
        target = jnp.concatenate([target, data.reward[:, None]], axis=-1)
    return pred["mean"], pred["aleatoric_var"] + pred["epistemic_var"], target


# --------------------------------------------------------------------- cross-validation
def _scored(data: Transition) -> Transition:
    """The fields a fit and a score read (``extras`` dropped, ``done`` kept)."""
    return Transition(data.state, data.action, data.reward, data.next_state, data.done)


@functools.partial(jax.jit, static_argnums=(0, 3, 4))
def _cross_validate(model, key, data: Transition, num_folds: int, num_epochs: int):
    n = data.state.shape[0]
    valid = _rows_finite(model.config, data)
    shuffle_key, fold_key = jax.random.split(key)
    # Valid rows in random order first; row order[p] falls in fold p * F // n_valid.
    order = jnp.argsort(jnp.where(valid, jax.random.uniform(shuffle_key, (n,)), 2.0))
    n_valid = valid.sum()
    position = jnp.zeros((n,), jnp.int32).at[order].set(jnp.arange(n, dtype=jnp.int32))
    fold_of = jnp.where(valid, position * num_folds // jnp.maximum(n_valid, 1), -1)

    def one_fold(fold, k):
        init_key, fit_key = jax.random.split(k)
        train = valid & (fold_of != fold)
        # Training rows first (stable, so in data order); only the first `size` count.
        rows = jnp.argsort(~train, stable=True)
        size = train.sum().astype(jnp.int32)
        buffer = ReplayBuffer(
            data=jax.tree.map(lambda x: x[rows], data), size=size, position=size % n
        )
        state, _ = model.fit(fit_key, model.init(init_key), buffer, num_epochs)
        held_out = fold_of == fold
        return _one_step_error(model, state, data, held_out)

    folds = jnp.arange(num_folds, dtype=jnp.int32)
    err = jax.vmap(one_fold)(folds, jax.random.split(fold_key, num_folds))
    return CrossValidation(
        fold_mse=err.mse_mean,
        fold_nll=err.nll_mean,
        mse_mean=err.mse_mean.mean(),
        mse_std=err.mse_mean.std(ddof=1),
        nll_mean=err.nll_mean.mean(),
        nll_std=err.nll_mean.std(ddof=1),
        fold_sizes=err.num_used,
        num_used=n_valid.astype(jnp.int32),
    )


def cross_validate(
    model, key: PRNGKey, data: Transition, num_folds: int = 5, num_epochs: int = 20
) -> CrossValidation:
    """K-fold cross-validation of ``model.fit`` on real transitions.

    The valid rows (no NaN or inf) are shuffled with ``key`` and split into
    ``num_folds`` folds of sizes differing by at most one. For each fold a
    fresh ``model.init`` is fit (``model.fit(key, state, buffer, num_epochs)``)
    on a :class:`~mbrl_jax.core.replay.ReplayBuffer` whose first ``size`` rows
    are the other folds' (capacity ``N`` for every fold, so all folds share one
    static shape), then scored by :func:`one_step_error` on the fold left out.
    The folds run under one ``jax.vmap`` in one compiled program (the fit's
    data-dependent ``lax.while_loop`` batches, running as many minibatches as
    the largest fold needs, the others masked); the same ``key`` gives the same
    result.

    Args:
      model: an :class:`~mbrl_jax.models.ensemble.Ensemble`, or any object with
        its ``config``, ``init(key)``, ``fit(key, state, buffer, num_epochs)
        -> (state, info)`` and ``predict``.
      key: PRNG key (shuffle, and each fold's init and fit).
      data: :class:`~mbrl_jax.core.types.Transition` with ``state [N, D]``,
        ``action [N, ...]``, ``next_state [N, D]``, ``reward [N]``, ``done [N]``.
      num_folds: ``F``, an integer in ``[2, N]``.
      num_epochs: epochs of each fold's fit, an integer ``>= 1``.

    Returns:
      :class:`CrossValidation`.

    Raises:
      ValueError: ``num_folds`` outside ``[2, N]`` or not an integer,
        ``num_epochs`` below 1 or not an integer, or ``data`` shapes that do
        not fit the model.
    """
    n = _check_data("cross_validate", model, data)
    num_folds = int(check_int_value("cross_validate: num_folds", num_folds, low=2, high=n))
    num_epochs = int(check_int_value("cross_validate: num_epochs", num_epochs, low=1))
    if jnp.shape(data.done)[:1] != (n,) or jnp.shape(data.reward)[:1] != (n,):
        raise ValueError(
            f"cross_validate: data.reward and data.done must have leading size N={n}, got "
            f"{jnp.shape(data.reward)} and {jnp.shape(data.done)}"
        )
    return _cross_validate(model, key, _scored(data), num_folds, num_epochs)
