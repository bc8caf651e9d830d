"""Fitting the probabilistic ensemble: bootstrap resamples, hold-out, elites.

Kept apart from :mod:`mbrl_jax.models.ensemble` (the network and its
prediction) so each file holds one concern.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from mbrl_jax.core.replay import ReplayBuffer
from mbrl_jax.core.types import Array, PRNGKey
from mbrl_jax.models.ensemble import Ensemble, EnsembleState, FitInfo, Normalizer


def _targets(config, data) -> Array:
    delta = data.next_state - data.state
    if config.learn_reward:
        delta = jnp.concatenate([delta, data.reward[..., None]], axis=-1)
    return delta


def fit_ensemble(
    ensemble: Ensemble, key: PRNGKey, state: EnsembleState, buffer: ReplayBuffer, num_epochs: int
) -> tuple[EnsembleState, FitInfo]:
    """Trains every member on its own bootstrap resample of the buffer.

    ``buffer.data`` is a :class:`~mbrl_jax.core.types.Transition` of
    ``state [C, D]`` observations, ``action``, ``next_state [C, D]``,
    ``reward [C]`` and ``done [C]`` (termination); only the first ``buffer.size``
    entries count, so the buffer's capacity is the only static shape and a
    growing data set does not recompile. The normaliser is refitted, a
    ``holdout_ratio`` share is held out for validation, each member draws a
    bootstrap resample of the rest and runs ``num_epochs`` epochs of
    minibatches from a fresh permutation of it; finally the elites are the
    members with the lowest validation loss. Transitions holding NaN or inf
    are left out (counted in ``FitInfo.dropped_nan``), and so are those with an
    entry beyond ``max_abs_value`` (``FitInfo.dropped_extreme``); a fit with no
    transition left keeps the parameters and reports NaN losses.

    Args:
      key: PRNG key.
      state: current ensemble (training continues from its params).
      buffer: the data.
      num_epochs: static number of epochs.
    """
    c = ensemble.config
    e, batch = ensemble.num_trained(), c.batch_size
    data = buffer.data
    capacity = buffer.capacity
    ensemble.check_shapes(data.state, data.action)
    if jnp.shape(data.next_state) != jnp.shape(data.state):
        raise ValueError(
            f"Ensemble.fit: next_state {jnp.shape(data.next_state)} must have the shape "
            f"of state {jnp.shape(data.state)}"
        )
    x_all = jnp.concatenate([data.state, ensemble.encode_action(data.action)], axis=-1)
    y_all = _targets(c, data)
    in_range = jnp.arange(capacity) < buffer.size
    finite = jnp.all(jnp.isfinite(x_all), -1) & jnp.all(jnp.isfinite(y_all), -1)
    # Entries beyond max_abs_value would overflow the float32 variance (1e30
    # squared is inf) and turn every prediction into NaN: such rows are left out.
    bound = c.max_abs_value
    extreme = finite & (jnp.any(jnp.abs(x_all) > bound, -1) | jnp.any(jnp.abs(y_all) > bound, -1))
    valid = in_range & finite & ~extreme
    x_all = jnp.where(valid[:, None], x_all, 0.0)
    y_all = jnp.where(valid[:, None], y_all, 0.0)
    n = jnp.sum(valid)
    normalizer = _fit_normalizer(x_all, y_all, valid)
    x_all = (x_all - normalizer.in_mean) / normalizer.in_std
    y_all = (y_all - normalizer.out_mean) / normalizer.out_std
    done_all = data.done.astype(bool)

    split_key, boot_key, epoch_key = jax.random.split(key, 3)
    # Valid indices in random order first, invalid ones at the end.
    order = jnp.argsort(jnp.where(valid, jax.random.uniform(split_key, (capacity,)), 2.0))
    n_val = jnp.where(n >= 2, jnp.floor(c.holdout_ratio * n).astype(jnp.int32), 0)
    n_train = n - n_val
    val_index, train_index = order, jnp.roll(order, -n_val)
    if ensemble.bootstrap:
        draw = jax.random.randint(boot_key, (e, capacity), 0, jnp.maximum(n_train, 1))
        boot = train_index[draw]
    else:  # every trained network sees the training set itself
        boot = jnp.broadcast_to(train_index, (e, capacity))
    num_batches = (n_train + batch - 1) // batch

    grad_fn = jax.value_and_grad(ensemble.train_loss)

    def epoch(carry, k):
        params, opt_state = carry
        shuffled = jnp.argsort(
            jnp.where(jnp.arange(capacity) < n_train, jax.random.uniform(k, (e, capacity)), 2.0),
            axis=1,
        )
        # Padding keeps every full-batch slice in range; padded slots get weight 0.
        shuffled = jnp.concatenate([shuffled, jnp.zeros((e, batch), shuffled.dtype)], axis=1)

        def batch_step(b_carry):
            params, opt_state, b, total = b_carry
            pos = jax.lax.dynamic_slice_in_dim(shuffled, b * batch, batch, axis=1)  # [E, B]
            weight = ((b * batch + jnp.arange(batch)) < n_train).astype(jnp.float32)
            idx = jnp.take_along_axis(boot, pos, axis=1)
            loss, grads = grad_fn(
                params,
                jax.random.fold_in(k, b),
                x_all[idx],
                y_all[idx],
                done_all[idx],
                jnp.broadcast_to(weight, (e, batch)),
                n_train,
            )
            updates, opt_state = ensemble.optimizer.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, b + 1, total + loss

        params, opt_state, _, total = jax.lax.while_loop(
            lambda bc: bc[2] < num_batches, batch_step, (params, opt_state, 0, 0.0)
        )
        return (params, opt_state), total / jnp.maximum(num_batches, 1) / e

    (params, opt_state), train_loss = jax.lax.scan(
        epoch,
        (ensemble.trainable(state), state.opt_state),
        jax.random.split(epoch_key, num_epochs),
    )
    trained = ensemble.trained_state(
        jax.random.fold_in(key, 1), state, params, opt_state, normalizer
    )
    # Validation: every member (or drawn sample) of the trained model.
    params = trained.params
    e = c.ensemble_size
    val_w = (jnp.arange(capacity) < n_val).astype(jnp.float32)
    xv, yv, dv = x_all[val_index], y_all[val_index], done_all[val_index]
    val_loss = jax.vmap(ensemble.member_loss, in_axes=(0, None, None, None, None))(
        params, xv, yv, dv, val_w
    )
    mean_v = jax.vmap(ensemble.network.apply, in_axes=(0, None))(params, xv)[0]
    val_mse = jnp.sum(jnp.mean((mean_v - yv) ** 2, -1) * val_w, -1) / jnp.maximum(n_val, 1)
    # Without a hold-out set, rank members by their training loss instead.
    val_loss = jnp.where(n_val > 0, val_loss, train_loss[-1])
    elites = jnp.argsort(val_loss)[: c.num_elites].astype(jnp.int32)
    # Nothing to learn from: the losses say so instead of reading 0.
    empty = n == 0
    info = FitInfo(
        jnp.where(empty, jnp.nan, train_loss),
        jnp.where(empty, jnp.nan, val_loss),
        jnp.where(empty, jnp.nan, val_mse),
        num_epochs * num_batches,
        jnp.sum(in_range & ~finite).astype(jnp.int32),
        jnp.sum(in_range & extreme).astype(jnp.int32),
        n.astype(jnp.int32),
    )
    return trained.replace(elites=elites), info


def _fit_normalizer(x: Array, y: Array, valid: Array) -> Normalizer:
    w = valid.astype(jnp.float32)[:, None]
    count = jnp.maximum(jnp.sum(w), 1.0)

    def moments(v):
        mean = jnp.sum(v * w, 0) / count
        std = jnp.sqrt(jnp.sum(((v - mean) ** 2) * w, 0) / count)
        return mean, jnp.where(std < 1e-6, 1.0, std)

    in_mean, in_std = moments(x)
    out_mean, out_std = moments(y)
    return Normalizer(in_mean, in_std, out_mean, out_std)
