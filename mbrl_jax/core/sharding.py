"""Seeds (or hyper-parameters) sharded over devices and processes with ``jax.sharding``.

JAX is the distributed engine: a 1-D :class:`jax.sharding.Mesh` over the
devices, the batch axis of ``jit(vmap(train))`` partitioned along it with
``NamedSharding(mesh, PartitionSpec("seeds"))``, and XLA runs each device's
share. Nothing here calls ``pmap``; nothing assumes one device or one host.

* :func:`device_mesh` -- a mesh over ``N`` (or all) devices;
* :func:`make_sharded` -- ``run(keys, *args)`` running ``jit(vmap(train))``
  over a batch sharded along the mesh, padding it to a multiple of the
  device count and cutting the padding off the outputs;
* :func:`initialize_distributed` -- ``jax.distributed.initialize`` from
  environment variables, for several processes (hosts) in one run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from mbrl_jax.core.jit import jit

SEED_AXIS = "seeds"
#: The mesh axis a search agent's batch of environments is sharded along.
ENV_AXIS = "envs"

#: Environment variables read by :func:`initialize_distributed`.
DISTRIBUTED_ENV = ("MBRL_JAX_COORDINATOR", "MBRL_JAX_NUM_PROCESSES", "MBRL_JAX_PROCESS_ID")


def device_mesh(devices: int | str | None = "all", axis: str = SEED_AXIS) -> Mesh:
    """A 1-D mesh named ``axis`` over the first ``devices`` devices (``"all"``: every one).

    ``axis=ENV_AXIS`` gives the mesh a search agent's ``mesh=`` takes (its
    environments sharded over the devices).

    Raises:
      ValueError: ``devices`` is not ``"all"`` or an integer in ``[1, jax.device_count()]``.
    """
    available = jax.devices()
    if devices is None or devices == "all":
        chosen = available
    else:
        if isinstance(devices, bool) or not isinstance(devices, int | np.integer):
            raise ValueError(f"devices must be 'all' or an integer >= 1, got {devices!r}")
        if not 1 <= devices <= len(available):
            raise ValueError(
                f"devices: asked for {devices}, but {len(available)} "
                f"{'is' if len(available) == 1 else 'are'} available ({jax.default_backend()})"
            )
        chosen = available[: int(devices)]
    return Mesh(np.array(chosen), (axis,))


def pad_batch(x: np.ndarray, pad: int) -> np.ndarray:
    """``x`` with its last entry repeated ``pad`` times along the batch axis."""
    return x if pad == 0 else np.concatenate([x, np.repeat(x[-1:], pad, axis=0)], axis=0)


def global_array(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A global array placed with ``sharding`` from a host array every process holds."""
    # Every process holds the whole (small) batch and hands each of its
    # devices its slice, so the same call builds a global array on one host
    # or many.
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def gather(tree, num: int | None = None):
    """NumPy copies of a (possibly multi-process) sharded output, the first ``num``
    entries of the batch axis (all when ``None``)."""

    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            from jax.experimental import multihost_utils

            x = multihost_utils.process_allgather(x, tiled=True)
        x = np.asarray(x)
        return x if num is None else x[:num]

    return jax.tree.map(one, tree)


def make_sharded(
    train: Callable, mesh: Mesh | None = None, axis: str = SEED_AXIS
) -> Callable[..., Any]:
    """``run(keys [n], *args) -> outputs [n, ...]``: ``jit(vmap(train))`` sharded over ``mesh``.

    ``keys`` (and every leaf of ``args``, e.g. vmapped hyper-parameters) has a
    leading batch axis of size ``n``; it is padded to a multiple of the number
    of devices along ``axis`` (repeating the last entry), placed with
    ``NamedSharding(mesh, PartitionSpec(axis))``, and the outputs come back
    with the padding cut off. When ``n`` is a multiple of the device count the
    outputs stay sharded along the batch axis until the caller gathers them
    (:func:`gather`, or ``np.asarray`` in one process); otherwise cutting the
    padding moves data. With several processes (:func:`initialize_distributed`)
    every process calls ``run`` with the same keys, each computes its devices'
    share, and the outputs are global arrays padded to the device count:
    :func:`gather` them. The same ``n`` does not recompile.

    Args:
      train: ``train(key, *args) -> pytree``, one seed.
      mesh: default :func:`device_mesh` over every device.
      axis: the mesh axis the batch is sharded along.

    Raises:
      ValueError: ``axis`` is not an axis of ``mesh``; (when called) an empty batch.
    """
    mesh = mesh if mesh is not None else device_mesh(axis=axis)
    if axis not in mesh.axis_names:
        raise ValueError(f"axis {axis!r} is not an axis of the mesh {tuple(mesh.axis_names)}")
    num_devices = mesh.shape[axis]
    sharding = NamedSharding(mesh, PartitionSpec(axis))
    impl = jax.random.key_impl(jax.random.key(0))

    def train_on_key_data(key_data, *args):
        return train(jax.random.wrap_key_data(key_data, impl=impl), *args)

    compiled = jit(jax.vmap(train_on_key_data), in_shardings=sharding, out_shardings=sharding)

    def inputs(keys, *args):
        """``(global inputs padded and sharded, n)`` for ``compiled``."""
        if jnp.issubdtype(keys.dtype, jax.dtypes.prng_key):
            keys = jax.random.key_data(keys)
        n = keys.shape[0] if keys.ndim else 0
        if n < 1:
            raise ValueError("make_sharded: the batch of seeds is empty")
        pad = (-n) % num_devices
        placed = jax.tree.map(
            lambda x: global_array(pad_batch(np.asarray(x), pad), sharding), (keys, *args)
        )
        return placed, n

    def run(keys, *args):
        placed, n = inputs(keys, *args)
        out = compiled(*placed)
        if n % num_devices == 0 or jax.process_count() > 1:
            return out
        return jax.tree.map(lambda x: x[:n], out)

    run.compiled = compiled
    run.inputs = inputs
    run.num_devices = num_devices
    return run


def initialize_distributed(env: dict | None = None) -> bool:
    """Starts JAX's multi-process runtime from environment variables.

    ``MBRL_JAX_COORDINATOR`` (``host:port`` of process 0),
    ``MBRL_JAX_NUM_PROCESSES`` and ``MBRL_JAX_PROCESS_ID``: all three start
    ``jax.distributed.initialize``; none leaves a single process.

    Returns:
      True if the runtime was started.

    Raises:
      ValueError: only some of the three are set, or the numbers are not
        integers with ``0 <= process id < number of processes``.
    """
    env = os.environ if env is None else env
    given = {name: env.get(name) for name in DISTRIBUTED_ENV}
    present = [name for name, value in given.items() if value]
    if not present:
        return False
    missing = [name for name in DISTRIBUTED_ENV if name not in present]
    if missing:
        raise ValueError(
            f"multi-process runs need all of {', '.join(DISTRIBUTED_ENV)}; "
            f"missing {', '.join(missing)}"
        )
    try:
        count = int(given["MBRL_JAX_NUM_PROCESSES"])
        process = int(given["MBRL_JAX_PROCESS_ID"])
    except ValueError:
        raise ValueError(
            "MBRL_JAX_NUM_PROCESSES and MBRL_JAX_PROCESS_ID must be integers, got "
            f"{given['MBRL_JAX_NUM_PROCESSES']!r} and {given['MBRL_JAX_PROCESS_ID']!r}"
        ) from None
    if count < 1 or not 0 <= process < count:
        raise ValueError(
            f"MBRL_JAX_PROCESS_ID must be in [0, {count}) and MBRL_JAX_NUM_PROCESSES >= 1, "
            f"got {process} of {count}"
        )
    jax.distributed.initialize(given["MBRL_JAX_COORDINATOR"], count, process)
    return True
