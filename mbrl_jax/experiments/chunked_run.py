"""Driving one agent's :class:`~mbrl_jax.core.chunked.Chunked` run over many seeds,
chunk by chunk: progress, evaluation, a JSON-lines log, TensorBoard, checkpoints
and resume.

The seeds run as one ``jit(vmap(...))`` per piece (``init``, ``n`` units,
``finish``, ``evaluate``), sharded over the devices as
:func:`~mbrl_jax.core.sharding.make_sharded` does; each piece compiles once.
Between chunks Python reports, evaluates and saves. A chunk is the same
compiled function whether the run was interrupted or not, so a resumed run
equals an uninterrupted one bit for bit.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from mbrl_jax.core import checkpoint
from mbrl_jax.core.chunked import Chunked, chunk_sizes, empty_outs, run_units
from mbrl_jax.core.jit import jit
from mbrl_jax.core.sharding import SEED_AXIS, gather, global_array, pad_batch
from mbrl_jax.core.validation import check_int_value
from mbrl_jax.experiments.reporting import ReturnTracker, Sinks, mean_or_none

#: Checkpoints kept per agent (the newest ones).
KEEP_CHECKPOINTS = 2


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a run is driven (validated on construction).

    Attributes:
      chunks: about how many chunks a run is cut into (progress, evaluation and
        checkpoint points), ``>= 1``; the chunk is the largest whole number of
        the agent's units that gives at least this many.
      eval_episodes: evaluation episodes per seed at each evaluation point,
        ``>= 0`` (0: no evaluation).
      eval_every: evaluate every this many chunks, ``>= 1``; the end of the run
        is always evaluated.
      checkpoint_dir: save the run after every chunk under
        ``checkpoint_dir/<agent>/`` (the newest two kept); ``None``: no checkpoints.
      resume: continue each agent from its newest checkpoint in
        ``checkpoint_dir`` (from the start where it has none).
      progress: report each chunk (a bar on a terminal, a line otherwise).
      jsonl: append one JSON line per chunk (and per evaluation) to this file.
      tensorboard: write TensorBoard event files into this directory (needs
        ``tensorboardX``: ``pip install -e ".[tensorboard]"``).
    """

    chunks: int = 10
    eval_episodes: int = 10
    eval_every: int = 2
    checkpoint_dir: str | None = None
    resume: bool = False
    progress: bool = True
    jsonl: str | None = None
    tensorboard: str | None = None

    def __post_init__(self):
        check_int_value("RunOptions.chunks", self.chunks, low=1, high=100_000)
        check_int_value("RunOptions.eval_episodes", self.eval_episodes, low=0, high=100_000)
        check_int_value("RunOptions.eval_every", self.eval_every, low=1, high=100_000)
        if self.resume and self.checkpoint_dir is None:
            raise ValueError("RunOptions.resume needs a checkpoint_dir (--checkpoint-dir DIR)")


def safe_name(spec: str) -> str:
    """A directory name for an agent spec (``dyna_q:5`` -> ``dyna_q-5``)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", spec)


def run_chunked(
    spec: str,
    chunked: Chunked,
    keys: jax.Array,
    mesh: Mesh,
    options: RunOptions,
    sinks: Sinks,
    identity: dict,
    log: Callable[[str], None],
) -> dict:
    """Runs one agent over a batch of seeds chunk by chunk.

    Args:
      spec: the agent's name in reports and its checkpoint directory.
      chunked: the agent's run.
      keys: ``[seeds]`` PRNG keys.
      mesh: a mesh with a ``"seeds"`` axis.
      options: :class:`RunOptions`.
      sinks: where chunk reports go.
      identity: JSON facts that must match for a checkpoint to be resumed
        (environment, seeds, budget, settings, ...).
      log: ``print``-like.

    Returns:
      dict with ``output`` (the agent's ``TrainOutput``, NumPy, ``[seeds, ...]``),
      ``compile_s`` (spent here: none after :func:`prepare`), ``run_s`` (this
      process's running time plus that of the run it resumed), ``checkpoint_s``,
      ``resumed_at_steps`` (0 for a fresh run), ``eval_steps``, ``eval_returns``
      ``[seeds][points]``, ``eval_lengths``, ``eval_episodes``.

    Raises:
      ValueError: a checkpoint to resume is broken or from a different run.
    """
    seeds = int(keys.shape[0])
    if options.checkpoint_dir is not None and jax.process_count() > 1:
        raise ValueError("--checkpoint-dir: checkpoints are written by single-process runs only")
    sharding = NamedSharding(mesh, PartitionSpec(SEED_AXIS))
    num_devices = mesh.shape[SEED_AXIS]
    per_chunk, evaluate_n, key_data = _layout(chunked, keys, mesh, options)
    placed = global_array(key_data, sharding)
    num_chunks = chunked.num_units // per_chunk
    chunk_steps = per_chunk * chunked.unit_steps

    def steps_after(chunks: int) -> int:
        """Real steps per seed once ``chunks`` chunks have run (``init``'s included)."""
        return chunked.initial_steps + chunks * chunk_steps

    start = time.perf_counter()
    pieces = _compiled(
        chunked, per_chunk, evaluate_n, mesh, jax.random.key_impl(keys), key_data.shape
    )
    compile_s = time.perf_counter() - start  # ~0 after prepare()
    init_c, run_c, finish_c, eval_c, unit_outs = pieces
    start = time.perf_counter()
    state = init_c(placed)
    run_s = time.perf_counter() - start

    ckpt_dir = Path(options.checkpoint_dir) / safe_name(spec) if options.checkpoint_dir else None
    meta = {
        **identity,
        "agent": spec,
        "units_per_chunk": per_chunk,
        "num_units": chunked.num_units,
        "devices": num_devices,
    }
    done_chunks, prior_run_s, checkpoint_s = 0, 0.0, 0.0
    outs_done = None  # the units' outputs so far, [S, units, ...]
    evals = {"steps": [], "returns": [], "lengths": []}
    returns = ReturnTracker(seeds)
    if options.resume and ckpt_dir is not None:
        found = checkpoint.latest(ckpt_dir, "chunk_")
        if found is None:
            log(f"  {spec}: no checkpoint in {ckpt_dir}, starting from the beginning")
        else:
            saved = checkpoint.read_metadata(found)
            _check_same_run(found, saved.get("run", {}), meta)
            done_chunks = int(saved["chunks_done"])
            like = {
                "state": state,
                "outs": _stacked_like(unit_outs, done_chunks * per_chunk, sharding),
            }
            tree, saved = checkpoint.restore(found, like)
            state = jax.device_put(tree["state"], sharding)
            outs_done = jax.device_put(tree["outs"], sharding) if done_chunks else None
            evals = saved["evals"]
            prior_run_s = float(saved["run_s"])
            returns = ReturnTracker.from_json(saved["returns"])
            log(f"  {spec}: resumed from {found} ({steps_after(done_chunks)} steps done)")
    resumed_at = steps_after(done_chunks) if done_chunks else 0

    total_steps = chunked.total_steps
    sinks.start(spec, total_steps, steps_after(done_chunks))

    def evaluate(state, point: int, steps: int):
        kd = _eval_keys(identity.get("seed", 0), point, key_data.shape[0], sharding)
        result = gather(eval_c(state, kd), seeds)
        per_seed = np.asarray(result.returns, np.float64).mean(axis=1)
        lengths = np.asarray(result.lengths, np.float64).mean(axis=1)
        evals["steps"].append(int(steps))
        evals["returns"].append([_finite(v) for v in per_seed])
        evals["lengths"].append([float(v) for v in lengths])
        sinks.evaluation(
            {
                "agent": spec,
                "event": "evaluation",
                "steps": int(steps),
                "eval_return": mean_or_none(per_seed),
            }
        )

    for c in range(done_chunks, num_chunks):
        start = time.perf_counter()
        state, outs = run_c(state)
        outs = jax.block_until_ready(outs)
        run_s += time.perf_counter() - start
        outs_done = outs if outs_done is None else _concat(outs_done, outs)
        steps = steps_after(c + 1)
        host = gather(outs, seeds)
        reward, done = jax.vmap(chunked.stream)(host) if chunked.stream else (None, None)
        train_return = (
            returns.add(np.asarray(reward), np.asarray(done)) if reward is not None else None
        )
        elapsed = prior_run_s + run_s
        sinks.chunk(
            {
                "agent": spec,
                "event": "chunk",
                "chunk": c + 1,
                "chunks": num_chunks,
                "steps": steps,
                "total_steps": total_steps,
                "elapsed_s": round(elapsed, 3),
                "steps_per_s": seeds * chunk_steps / max(time.perf_counter() - start, 1e-9),
                "train_return": train_return,
                "episodes": returns.episodes,
            }
        )
        if eval_c is not None and (c + 1) % options.eval_every == 0 and c + 1 < num_chunks:
            start = time.perf_counter()
            evaluate(state, c + 1, steps)
            run_s += time.perf_counter() - start
        if ckpt_dir is not None:
            start = time.perf_counter()
            _save(ckpt_dir, c + 1, state, outs_done, meta, evals, returns, prior_run_s + run_s)
            checkpoint_s += time.perf_counter() - start

    start = time.perf_counter()
    if outs_done is None:
        outs_done = jax.vmap(lambda s: empty_outs(chunked, s))(state)
    state, output = finish_c(state, outs_done)
    output = gather(jax.block_until_ready(output), seeds)
    run_s += time.perf_counter() - start
    sinks.finished(total_steps)
    if eval_c is not None:
        start = time.perf_counter()
        evaluate(state, num_chunks + 1, total_steps)
        run_s += time.perf_counter() - start
    return {
        "output": output,
        "compile_s": compile_s,
        "run_s": prior_run_s + run_s,
        "checkpoint_s": checkpoint_s,
        "resumed_at_steps": resumed_at,
        "eval_steps": evals["steps"],
        # per seed, over the evaluation points
        "eval_returns": [list(x) for x in zip(*evals["returns"], strict=True)],
        "eval_lengths": [list(x) for x in zip(*evals["lengths"], strict=True)],
        "eval_episodes": evaluate_n,
        "eval_note": chunked.eval_note if evaluate_n else "",
        "chunks": num_chunks,
    }


def prepare(chunked: Chunked, keys: jax.Array, mesh: Mesh, options: RunOptions):
    """Compiles a run's pieces ahead of :func:`run_chunked` (which then finds them
    compiled). Returns ``(compile_s, output shapes)``: the ``TrainOutput``'s
    ``ShapeDtypeStruct``s, to size the run before it starts."""
    per_chunk, evaluate_n, key_data = _layout(chunked, keys, mesh, options)
    start = time.perf_counter()
    pieces = _compiled(
        chunked, per_chunk, evaluate_n, mesh, jax.random.key_impl(keys), key_data.shape
    )
    return time.perf_counter() - start, pieces[2].out_info[1]


def _layout(chunked: Chunked, keys, mesh: Mesh, options: RunOptions):
    """``(units per chunk, evaluation episodes, key data padded to the devices)``."""
    seeds = int(keys.shape[0])
    per_chunk = chunk_sizes(chunked.num_units, options.chunks)
    evaluate_n = options.eval_episodes if chunked.evaluate is not None else 0
    key_data = pad_batch(np.asarray(jax.random.key_data(keys)), (-seeds) % mesh.shape[SEED_AXIS])
    return per_chunk, evaluate_n, key_data


@functools.lru_cache(maxsize=16)
def _compiled(chunked: Chunked, per_chunk: int, evaluate_n: int, mesh: Mesh, impl, key_shape):
    """The compiled pieces of a run: ``(init, run n units, finish, evaluate or None,
    unit output shapes)``, compiled once per process for the same agent, chunk
    size and batch (a repeated or resumed run in one process compiles nothing)."""
    sharding = NamedSharding(mesh, PartitionSpec(SEED_AXIS))
    num_chunks = chunked.num_units // per_chunk

    def wrap(kd):
        return jax.random.wrap_key_data(kd, impl=impl)

    shard = {"in_shardings": sharding, "out_shardings": sharding}
    keys = jax.ShapeDtypeStruct(key_shape, jnp.uint32, sharding=sharding)
    init_fn = jit(jax.vmap(lambda kd: chunked.init(wrap(kd))), **shard)
    init_c = init_fn.lower(keys).compile()
    state = jax.eval_shape(init_fn, keys)
    run_c = None
    if num_chunks:
        run_c = jit(jax.vmap(run_units(chunked, per_chunk)), **shard).lower(state).compile()
    unit_outs = jax.eval_shape(lambda s: jax.vmap(chunked.unit)(s)[1], state)
    all_outs = _stacked_like(unit_outs, chunked.num_units, sharding)
    finish_c = jit(jax.vmap(chunked.finish), **shard).lower(state, all_outs).compile()
    eval_c = None
    if evaluate_n:
        evaluate = jax.vmap(lambda s, kd: chunked.evaluate(s, wrap(kd), evaluate_n))
        eval_c = jit(evaluate, **shard).lower(state, keys).compile()
    return init_c, run_c, finish_c, eval_c, unit_outs


def _concat(a, b):
    """Unit outputs ``[S, n, ...]`` and ``[S, m, ...]`` joined along the units."""
    return jax.tree.map(lambda x, y: jnp.concatenate([x, y], axis=1), a, b)


def _finite(v) -> float | None:
    return float(v) if np.isfinite(v) else None


def _stacked_like(unit_outs, n: int, sharding):
    """``ShapeDtypeStruct``s of ``n`` stacked units of per-seed outputs ``[S, ...]``."""
    return jax.tree.map(
        lambda s: jax.ShapeDtypeStruct((s.shape[0], n, *s.shape[1:]), s.dtype, sharding=sharding),
        unit_outs,
    )


def _eval_keys(seed: int, point: int, n: int, sharding) -> jax.Array:
    base = jax.random.fold_in(jax.random.key(seed), 0x65766C)  # separate from training keys
    keys = jax.random.split(jax.random.fold_in(base, point), n)
    return global_array(np.asarray(jax.random.key_data(keys)), sharding)


def _check_same_run(path: Path, saved: dict, current: dict) -> None:
    for name, value in current.items():
        if saved.get(name) != value:
            raise ValueError(
                f"--resume: checkpoint {path} was written by a different run "
                f"({name} {saved.get(name)!r} there, {value!r} now); resume with the "
                "same settings, or use another --checkpoint-dir"
            )


def _save(ckpt_dir: Path, chunks_done: int, state, outs, meta, evals, returns, run_s):
    path = ckpt_dir / f"chunk_{chunks_done:06d}"
    checkpoint.save(
        path,
        {"state": state, "outs": outs},
        {
            "run": meta,
            "chunks_done": chunks_done,
            "evals": evals,
            "run_s": run_s,
            "returns": returns.to_json(),
        },
    )
    for old in checkpoint.list_checkpoints(ckpt_dir, "chunk_")[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
