"""Atomic file output: a reader never sees a half-written file, a killed writer leaves the old one.

Every alpseg output (ALPS.json, phrase banks, results, checkpoints of long jobs) goes through
:func:`atomic_open`: it writes to a temporary file in the target folder and ``os.replace``s it into
place when the block ends without an exception.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import IO, Any, Iterator

__all__ = ["atomic_open", "atomic_write", "atomic_write_json"]


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w") -> Iterator[IO]:
    """``open(path, mode)`` for writing, made atomic. ``mode`` is "w" (text, UTF-8) or "wb"."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files; mode must be 'w' or 'wb', not {mode!r}")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8", "newline": ""})) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write(path: str, data: str | bytes) -> None:
    """Write ``data`` (text or bytes) to ``path`` atomically."""
    with atomic_open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def atomic_write_json(path: str, obj: Any, indent: int | None = None) -> None:
    """``json.dump`` to ``path`` atomically."""
    with atomic_open(path) as f:
        json.dump(obj, f, indent=indent)
