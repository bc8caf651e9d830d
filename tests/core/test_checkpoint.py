"""Checkpoints: round trips of any pytree, and clear errors for broken ones."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_jax.core import checkpoint


class Inner(NamedTuple):
    q: jax.Array
    flags: jax.Array


def _tree():
    return {
        "inner": Inner(jnp.arange(12.0).reshape(3, 4), jnp.array([True, False])),
        "key": jax.random.key(7),
        "keys": jax.random.split(jax.random.key(1), 3),
        "step": jnp.int32(41),
        "bits": jnp.arange(5, dtype=jnp.uint32),
    }


def _equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        if checkpoint._is_key(x):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
        assert np.asarray(x).dtype == np.asarray(y).dtype


def test_round_trip_keeps_structure_dtypes_keys_and_metadata(tmp_path):
    tree = _tree()
    path = checkpoint.save(tmp_path / "ckpt", tree, {"chunk": 3, "spec": "dyna_q:5"})
    restored, meta = checkpoint.restore(path, tree)
    assert meta == {"chunk": 3, "spec": "dyna_q:5"}
    assert jax.tree.structure(restored) == jax.tree.structure(tree)
    _equal(restored, tree)
    # The restored keys draw the same numbers.
    np.testing.assert_array_equal(
        jax.random.uniform(restored["key"], (4,)), jax.random.uniform(tree["key"], (4,))
    )
    assert checkpoint.read_metadata(path)["chunk"] == 3
    assert checkpoint.latest(tmp_path) == path


def test_zero_size_arrays(tmp_path):
    for tree in ({"a": jnp.zeros((0, 3)), "b": jnp.ones(2)}, {"a": jnp.zeros((0, 3), jnp.int32)}):
        checkpoint.save(tmp_path / "c", tree)
        restored, _ = checkpoint.restore(tmp_path / "c", tree)
        _equal(restored, tree)


def test_restore_with_shape_dtype_structs(tmp_path):
    tree = {"a": jnp.ones((2, 3)), "b": jnp.int32(5)}
    checkpoint.save(tmp_path / "c", tree)
    like = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)
    restored, _ = checkpoint.restore(tmp_path / "c", like)
    _equal(restored, tree)


def test_save_replaces_and_leaves_no_temporary_directory(tmp_path):
    checkpoint.save(tmp_path / "c", {"a": jnp.zeros(2)})
    checkpoint.save(tmp_path / "c", {"a": jnp.ones(2)})
    restored, _ = checkpoint.restore(tmp_path / "c", {"a": jnp.zeros(2)})
    np.testing.assert_array_equal(restored["a"], np.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["c"]


def _data_files(path):
    return [p for p in sorted(path.rglob("*")) if p.is_file() and p.name != checkpoint.MANIFEST]


def test_corrupted_file_is_a_clear_error(tmp_path):
    tree = _tree()
    path = checkpoint.save(tmp_path / "c", tree)
    victim = max(_data_files(path), key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupted"):
        checkpoint.restore(path, tree)


def test_truncated_and_missing_files_are_clear_errors(tmp_path):
    tree = _tree()
    path = checkpoint.save(tmp_path / "c", tree)
    victim = max(_data_files(path), key=lambda p: p.stat().st_size)
    victim.write_bytes(victim.read_bytes()[:3])
    with pytest.raises(ValueError, match="corrupted"):
        checkpoint.restore(path, tree)
    victim.unlink()
    with pytest.raises(ValueError, match="incomplete: missing"):
        checkpoint.restore(path, tree)


def test_unfinished_save_is_not_a_checkpoint(tmp_path):
    path = checkpoint.save(tmp_path / "c", {"a": jnp.zeros(2)})
    (path / checkpoint.MANIFEST).unlink()
    with pytest.raises(ValueError, match="incomplete"):
        checkpoint.restore(path, {"a": jnp.zeros(2)})
    assert checkpoint.latest(tmp_path) is None
    with pytest.raises(ValueError, match="no such directory"):
        checkpoint.restore(tmp_path / "nothing", {"a": jnp.zeros(2)})
    (path / checkpoint.MANIFEST).write_text("{not json")
    with pytest.raises(ValueError, match="not JSON"):
        checkpoint.restore(path, {"a": jnp.zeros(2)})


def test_a_different_run_is_refused(tmp_path):
    path = checkpoint.save(tmp_path / "c", {"a": jnp.zeros((2, 3))})
    with pytest.raises(ValueError, match="different agent or configuration"):
        checkpoint.restore(path, {"a": jnp.zeros((2, 4))})
    with pytest.raises(ValueError, match="different agent or configuration"):
        checkpoint.restore(path, {"a": jnp.zeros((2, 3), jnp.int32)})
    with pytest.raises(ValueError, match="holds 1 arrays"):
        checkpoint.restore(path, {"a": jnp.zeros((2, 3)), "b": jnp.zeros(1)})


def test_bad_input_to_save(tmp_path):
    with pytest.raises(ValueError, match="JSON"):
        checkpoint.save(tmp_path / "c", {"a": jnp.zeros(1)}, {"x": object()})
    with pytest.raises(ValueError, match="array"):
        checkpoint.save(tmp_path / "c", {"a": object()})
