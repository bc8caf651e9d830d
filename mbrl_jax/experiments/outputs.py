"""What a run will write and where, checked before it starts: the size of its
outputs against the machine's memory, an output directory that can be written
and never loses an earlier run, and files written atomically."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

from mbrl_jax.core.validation import MAX_STEPS

__all__ = [
    "MAX_STEPS",
    "check_memory",
    "output_bytes",
    "physical_memory_bytes",
    "prepare_out_dir",
    "writable_dir",
    "write_atomic",
]


def output_bytes(shapes) -> int:
    """Bytes of a pytree of arrays or ``ShapeDtypeStruct``s."""
    return int(
        sum(
            int(np.prod(leaf.shape)) * np.dtype(leaf.dtype).itemsize
            for leaf in jax.tree.leaves(shapes)
        )
    )


def physical_memory_bytes() -> int | None:
    """This machine's memory, or ``None`` where the OS does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(sizes: dict[str, int], seeds: int, steps: int, fraction: float = 0.5) -> None:
    """``ValueError`` when one agent's outputs would take more than ``fraction``
    of the machine's memory (they are copied to the host to be summarised)."""
    memory = physical_memory_bytes()
    if memory is None:
        return
    for spec, size in sizes.items():
        if size > fraction * memory:
            raise ValueError(
                f"{spec}: {seeds} seeds x {steps} steps would hold {size / 2**30:.1f} GiB of "
                f"outputs, more than half of this machine's {memory / 2**30:.1f} GiB; "
                "lower --steps, --episodes or --seeds"
            )


def prepare_out_dir(out_dir: str | Path, overwrite: bool = False) -> Path:
    """The directory a run will write to, checked before the run starts.

    ``out_dir`` itself when it holds no ``results.json`` (or ``overwrite``);
    otherwise the first free ``out_dir-2``, ``out_dir-3``, ... so an earlier
    run is never lost. The directory is created and a file written and removed
    in it.

    Raises:
      ValueError: the path is a file, or the directory cannot be written.
    """
    base = Path(out_dir)
    out, number = base, 1
    while not overwrite and (out / "results.json").exists():
        number += 1
        out = base.with_name(f"{base.name}-{number}")
    return writable_dir(out, "--out")


def writable_dir(path: str | Path, flag: str) -> Path:
    """``path`` as a directory that exists and can be written (created if need be).

    Raises:
      ValueError: naming ``flag``, when it is a file or cannot be written.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{flag} {out} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as err:
        raise ValueError(f"{flag} {out}: cannot write there ({err.strerror or err})") from None
    return out


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """``write(temporary path)`` then rename over ``path``: a reader never sees
    half a file, and a failed write leaves the old one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
