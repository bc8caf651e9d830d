"""Runs driven chunk by chunk: a resumed run equals an uninterrupted one, reports
and evaluations are written, broken or foreign checkpoints are refused."""

import dataclasses
import functools
import json

import jax
import numpy as np
import pytest

from mbrl_jax import envs
from mbrl_jax.agents import alphazero, dyna_q, muzero, pets
from mbrl_jax.core import checkpoint
from mbrl_jax.core.chunked import as_train, chunk_sizes
from mbrl_jax.core.sharding import device_mesh
from mbrl_jax.experiments.chunked_run import RunOptions, Sinks, run_chunked, safe_name


class Crash(Exception):
    pass


class CrashingSinks(Sinks):
    """Sinks that stop the run at a chunk, as a crash would (after that chunk's
    checkpoint of the previous one is on disk)."""

    def __init__(self, options, at_chunk):
        super().__init__(options, lambda msg: None)
        self.at_chunk = at_chunk

    def chunk(self, record):
        if record["chunk"] == self.at_chunk:
            raise Crash
        super().chunk(record)


IDENTITY = {"env": "test", "seeds": 3, "seed": 0}


def _run(chunked, ckpt, resume=False, sinks=None, seeds=3, seed=0, eval_episodes=2, **kw):
    options = RunOptions(
        chunks=4, eval_episodes=eval_episodes, eval_every=1, checkpoint_dir=ckpt, **kw
    )
    options = dataclasses.replace(options, resume=resume, progress=False)
    keys = jax.random.split(jax.random.key(0), seeds)
    sinks = sinks or Sinks(options, lambda msg: None)
    identity = dict(IDENTITY, seeds=seeds, seed=seed)
    try:
        mesh = device_mesh(1)
        return run_chunked("agent:1", chunked, keys, mesh, options, sinks, identity, print)
    finally:
        sinks.close()


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _resume_matches(chunked, tmp_path, exact: bool, eval_episodes=2):
    whole = _run(chunked, str(tmp_path / "a"), eval_episodes=eval_episodes)
    options = RunOptions(chunks=4, checkpoint_dir=str(tmp_path / "b"), progress=False)
    with pytest.raises(Crash):
        sinks = CrashingSinks(options, at_chunk=3)
        _run(chunked, str(tmp_path / "b"), sinks=sinks, eval_episodes=eval_episodes)
    saved = checkpoint.list_checkpoints(tmp_path / "b" / safe_name("agent:1"), "chunk_")
    assert [p.name for p in saved] == ["chunk_000001", "chunk_000002"]
    resumed = _run(chunked, str(tmp_path / "b"), resume=True, eval_episodes=eval_episodes)
    assert resumed["resumed_at_steps"] == chunked.initial_steps + 2 * chunk_sizes(
        chunked.num_units, 4
    ) * (chunked.unit_steps)
    for a, b in zip(_leaves(whole["output"]), _leaves(resumed["output"]), strict=True):
        if exact:
            np.testing.assert_array_equal(a, b)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert whole["eval_steps"] == resumed["eval_steps"]
    np.testing.assert_allclose(
        np.array(whole["eval_returns"], float), np.array(resumed["eval_returns"], float)
    )
    return whole


def test_dyna_q_resumed_equals_uninterrupted_bitwise_and_equals_train(tmp_path):
    env, params = envs.make("DynaMaze")
    chunked = dyna_q.make_chunked(dyna_q.Config(num_steps=1100, planning_steps=5), env, params)
    whole = _resume_matches(chunked, tmp_path, exact=True)
    # Chunk by chunk computes what the one-call train computes.
    train = jax.jit(jax.vmap(as_train(chunked)))(jax.random.split(jax.random.key(0), 3))
    for a, b in zip(_leaves(train), _leaves(whole["output"]), strict=True):
        np.testing.assert_array_equal(a, b)
    # 4 units of 256 steps in chunks of one unit, the last 76 steps in finish;
    # evaluations after chunks 1..3 and at the end.
    assert whole["chunks"] == 4
    assert whole["eval_steps"] == [256, 512, 768, 1100]
    assert len(whole["eval_returns"]) == 3 and len(whole["eval_returns"][0]) == 4


@pytest.mark.slow  # Dyna-Q, AlphaZero and MuZero resume in CI
def test_pets_resumed_equals_uninterrupted(tmp_path):
    env, params = envs.make("ContinuousCartPole")
    cfg = pets.preset("ContinuousCartPole")
    cfg = dataclasses.replace(
        cfg,
        num_trials=5,
        trial_length=20,
        num_epochs=2,
        planner=dataclasses.replace(cfg.planner, population=32, horizon=5),
    )
    _resume_matches(pets.make_chunked(cfg, env, params), tmp_path, exact=False)


@pytest.mark.slow  # MuZero and Dyna-Q resume in CI
def test_alphazero_resumed_equals_uninterrupted(tmp_path):
    env, params = envs.make("CartPole-v1")
    cfg = dataclasses.replace(
        alphazero.Config(),
        num_iterations=4,
        num_envs=4,
        unroll_length=8,
        hidden=(16,),
        num_minibatches=2,
        eval_envs=2,
        eval_steps=20,
    )
    cfg = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, num_simulations=4))
    # No evaluation: the search compiles once (in finish), not twice.
    _resume_matches(alphazero.make_chunked(cfg, env, params), tmp_path, False, eval_episodes=0)


@pytest.mark.slow
def test_muzero_resumed_equals_uninterrupted(tmp_path):
    env, params = envs.make("CartPole-v1")
    cfg = dataclasses.replace(
        muzero.Config(),
        num_iterations=4,
        num_envs=4,
        unroll_length=8,
        eval_envs=2,
        eval_steps=20,
        updates_per_iteration=2,
    )
    cfg = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, num_simulations=4))
    _resume_matches(muzero.make_chunked(cfg, env, params), tmp_path, exact=False)


@functools.cache
def _small_dyna():
    # One object for every test here: its compiled pieces are reused.
    env, params = envs.make("DynaMaze")
    return dyna_q.make_chunked(dyna_q.Config(num_steps=600, planning_steps=2), env, params)


def test_a_broken_or_foreign_checkpoint_is_refused(tmp_path):
    chunked = _small_dyna()
    _run(chunked, str(tmp_path))
    with pytest.raises(ValueError, match="different run"):
        _run(chunked, str(tmp_path), resume=True, seed=1)
    newest = checkpoint.latest(tmp_path / safe_name("agent:1"), "chunk_")
    victim = max(
        (p for p in newest.rglob("*") if p.is_file() and p.name != "manifest.json"),
        key=lambda p: p.stat().st_size,
    )
    victim.write_bytes(victim.read_bytes()[:-7])
    with pytest.raises(ValueError, match="corrupted"):
        _run(chunked, str(tmp_path), resume=True)


def test_resume_without_checkpoints_starts_from_the_beginning(tmp_path):
    out = _run(_small_dyna(), str(tmp_path / "empty"), resume=True)
    assert out["resumed_at_steps"] == 0


def test_jsonl_and_tensorboard_are_written(tmp_path):
    pytest.importorskip("tensorboardX")
    log = tmp_path / "log" / "run.jsonl"
    tb = tmp_path / "tb"
    out = _run(_small_dyna(), None, jsonl=str(log), tensorboard=str(tb))
    records = [json.loads(line) for line in log.read_text().splitlines()]
    chunks = [r for r in records if r["event"] == "chunk"]
    evals = [r for r in records if r["event"] == "evaluation"]
    assert [r["chunk"] for r in chunks] == [1, 2]
    assert [r["steps"] for r in chunks] == [256, 512]
    assert [r["steps"] for r in evals] == out["eval_steps"] == [256, 600]
    assert all(r["elapsed_s"] >= 0 and r["total_steps"] == 600 for r in chunks)
    assert any(p.name.startswith("events.out.tfevents") for p in tb.iterdir())


def test_run_options_are_validated():
    with pytest.raises(ValueError, match="RunOptions.chunks"):
        RunOptions(chunks=0)
    with pytest.raises(ValueError, match="RunOptions.eval_episodes"):
        RunOptions(eval_episodes=-1)
    with pytest.raises(ValueError, match="checkpoint_dir"):
        RunOptions(resume=True)
    assert chunk_sizes(12, 5) == 2 and chunk_sizes(13, 4) == 1 and chunk_sizes(3, 10) == 1
