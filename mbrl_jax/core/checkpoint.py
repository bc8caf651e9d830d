"""Saving and restoring any pytree of arrays (a run's state, a fitted model, a
``TrainOutput``) with orbax-checkpoint, checked on the way back.

orbax writes the arrays (tensorstore, one directory per checkpoint); this
module adds what a resumed run needs to trust it:

* the leaves are saved as a flat list, so any pytree (NamedTuples, flax
  structs, typed PRNG keys -- saved as their key data) round-trips to the
  structure of the ``like`` tree given to :func:`restore`;
* a ``manifest.json`` records the SHA-256 of every file, the shapes and dtypes
  of the leaves and the caller's metadata; it is written last and the
  directory is renamed into place only then, so a crash mid-save leaves no
  checkpoint rather than half of one;
* :func:`restore` verifies every file and every leaf's shape and dtype first:
  a corrupted, truncated or foreign checkpoint is a ``ValueError`` that says
  which, never a half-loaded state.

No pickle anywhere: a checkpoint holds arrays and JSON only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import jax
import numpy as np

FORMAT = "mbrl_jax-checkpoint-1"
MANIFEST = "manifest.json"

__all__ = ["FORMAT", "MANIFEST", "latest", "list_checkpoints", "read_metadata", "restore", "save"]


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _plain(leaf) -> np.ndarray:
    """A host copy of a leaf; typed PRNG keys become their ``uint32`` key data."""
    if _is_key(leaf):
        leaf = jax.random.key_data(leaf)
    out = np.asarray(leaf)
    if out.dtype == object:
        raise TypeError(f"{type(leaf).__name__} is not an array")
    return out


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): _digest(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


def save(directory: str | Path, tree, metadata: dict | None = None) -> Path:
    """Writes ``tree`` (a pytree of arrays) and JSON ``metadata`` to ``directory``.

    The checkpoint appears under its name only once complete (written in a
    temporary sibling directory and renamed); an existing one of that name is
    replaced.

    Returns:
      ``directory`` as a :class:`~pathlib.Path`.

    Raises:
      ValueError: a leaf is not an array, or the metadata is not JSON.
    """
    import orbax.checkpoint as ocp

    target = Path(directory).absolute()
    leaves = jax.tree.leaves(tree)
    try:
        plain = [_plain(leaf) for leaf in leaves]
    except (TypeError, ValueError) as err:
        raise ValueError(f"checkpoint: every leaf must be an array ({err})") from None
    try:
        meta_text = json.dumps(metadata or {})
    except TypeError as err:
        raise ValueError(f"checkpoint metadata must be JSON: {err}") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        # orbax refuses zero-size arrays: those live in the manifest alone.
        items = {str(i): x for i, x in enumerate(plain) if x.size}
        if items:
            checkpointer = ocp.StandardCheckpointer()
            checkpointer.save(tmp / "arrays", items)
            checkpointer.wait_until_finished()
            checkpointer.close()
        manifest = {
            "format": FORMAT,
            "num_leaves": len(plain),
            "leaves": [[list(x.shape), str(x.dtype)] for x in plain],
            "keys": [i for i, leaf in enumerate(leaves) if _is_key(leaf)],
            "files": _files(tmp),
            "metadata": json.loads(meta_text),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _manifest(directory: Path) -> dict:
    path = directory / MANIFEST
    if not directory.is_dir():
        raise ValueError(f"checkpoint {directory}: no such directory")
    if not path.is_file():
        raise ValueError(
            f"checkpoint {directory} is incomplete: it has no {MANIFEST} (the save did not finish)"
        )
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError(f"checkpoint {directory} is corrupted: {MANIFEST} is not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(
            f"checkpoint {directory}: not an mbrl_jax checkpoint (format "
            f"{manifest.get('format') if isinstance(manifest, dict) else None!r}, "
            f"expected {FORMAT!r})"
        )
    return manifest


def read_metadata(directory: str | Path) -> dict:
    """The metadata saved with a checkpoint (its manifest checked, not its arrays)."""
    return _manifest(Path(directory))["metadata"]


def verify(directory: str | Path) -> dict:
    """Checks every file of a checkpoint against its manifest; returns the manifest.

    Raises:
      ValueError: a file is missing, added, truncated or changed.
    """
    directory = Path(directory)
    manifest = _manifest(directory)
    found = _files(directory)
    expected = manifest["files"]
    missing = sorted(set(expected) - set(found))
    if missing:
        raise ValueError(f"checkpoint {directory} is incomplete: missing {missing[0]}")
    changed = sorted(name for name in expected if found[name] != expected[name])
    if changed:
        raise ValueError(
            f"checkpoint {directory} is corrupted: {changed[0]} does not match its checksum"
        )
    extra = sorted(set(found) - set(expected))
    if extra:
        raise ValueError(f"checkpoint {directory} is corrupted: unexpected file {extra[0]}")
    return manifest


def restore(directory: str | Path, like) -> tuple[Any, dict]:
    """Reads a checkpoint into the structure of ``like``.

    Args:
      directory: a directory written by :func:`save`.
      like: a pytree with the structure, shapes and dtypes to restore (arrays
        or ``jax.ShapeDtypeStruct``s; typed PRNG keys where keys were saved).

    Returns:
      ``(tree, metadata)``: ``tree`` of ``jax.Array``s shaped like ``like``.

    Raises:
      ValueError: the checkpoint is missing, incomplete, corrupted, or holds
        other leaves than ``like`` (a different agent, config or version).
    """
    import orbax.checkpoint as ocp

    directory = Path(directory).absolute()
    manifest = verify(directory)
    like_leaves, treedef = jax.tree.flatten(like)
    shapes = []
    for leaf in like_leaves:
        if _is_key(leaf):
            shape = jax.eval_shape(jax.random.key_data, leaf)
            shapes.append([list(shape.shape), str(np.dtype(shape.dtype))])
        else:
            shapes.append([list(np.shape(leaf)), str(np.dtype(leaf.dtype))])
    if manifest["num_leaves"] != len(like_leaves):
        raise ValueError(
            f"checkpoint {directory} holds {manifest['num_leaves']} arrays, the run to resume "
            f"has {len(like_leaves)}: it was written by a different agent or configuration"
        )
    for i, (saved, wanted) in enumerate(zip(manifest["leaves"], shapes, strict=True)):
        if saved != wanted:
            raise ValueError(
                f"checkpoint {directory}: array {i} is {saved[1]}{saved[0]}, the run to resume "
                f"needs {wanted[1]}{wanted[0]}: written by a different agent or configuration"
            )
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = {
        str(i): jax.ShapeDtypeStruct(tuple(shape), np.dtype(dtype), sharding=device)
        for i, (shape, dtype) in enumerate(shapes)
        if int(np.prod(shape))
    }
    arrays = {}
    if abstract:
        checkpointer = ocp.StandardCheckpointer()
        try:
            arrays = checkpointer.restore(directory / "arrays", abstract)
        except Exception as err:  # orbax/tensorstore errors vary by release
            raise ValueError(f"checkpoint {directory} could not be read: {err}") from None
        finally:
            checkpointer.close()
    leaves = []
    for i, leaf in enumerate(like_leaves):
        shape, dtype = shapes[i]
        value = arrays[str(i)] if str(i) in arrays else jax.numpy.zeros(shape, dtype)
        if _is_key(leaf):
            value = jax.random.wrap_key_data(value, impl=jax.random.key_impl(leaf))
        leaves.append(value)
    return jax.tree.unflatten(treedef, leaves), manifest["metadata"]


def list_checkpoints(checkpoint_dir: str | Path, prefix: str = "") -> list[Path]:
    """Complete checkpoints (with a manifest) under ``checkpoint_dir`` whose
    names start with ``prefix``, in name order (oldest first for zero-padded names)."""
    base = Path(checkpoint_dir)
    if not base.is_dir():
        return []
    return sorted(
        p
        for p in base.iterdir()
        if p.is_dir() and p.name.startswith(prefix) and (p / MANIFEST).is_file()
    )


def latest(checkpoint_dir: str | Path, prefix: str = "") -> Path | None:
    """The last complete checkpoint under ``checkpoint_dir`` (see :func:`list_checkpoints`)."""
    found = list_checkpoints(checkpoint_dir, prefix)
    return found[-1] if found else None
