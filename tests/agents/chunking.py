"""Driving a :class:`~mbrl_jax.core.chunked.Chunked` run piece by piece, for tests."""

import jax
import jax.numpy as jnp

from mbrl_jax.core.chunked import run_units


def chunk_by_chunk(chunked, key, sizes):
    """The run as ``init``, ``run_units`` pieces of ``sizes`` units and ``finish``,
    each compiled on its own, the pieces' unit outputs joined along the units (as
    :mod:`mbrl_jax.experiments.chunked_run` drives a run, less its seed axis)."""
    assert sum(sizes) == chunked.num_units
    state = jax.jit(chunked.init)(key)
    pieces = []
    for n in sizes:
        state, outs = jax.jit(run_units(chunked, n))(state)
        pieces.append(outs)
    outs = jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=0), *pieces)
    return jax.jit(chunked.finish)(state, outs)[1]
