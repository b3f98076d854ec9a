"""Atomic file output: a reader never sees a half-written file, a killed writer leaves the old one.

Every alpseg output (ALPS.json, phrase banks, results, checkpoints of long jobs) goes through
:func:`atomic_open`: it writes to a temporary file in the target folder and ``os.replace``s it into
place when the block ends without an exception. :func:`write_json` is the package's one JSON writer
for results: strict JSON (NaN / inf become ``null``), numpy and torch values as plain numbers.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
from typing import IO, Any, Iterator, Mapping

__all__ = ["atomic_open", "atomic_write", "atomic_write_json", "json_safe", "write_json"]


def _create_temp(folder: str, name: str) -> tuple[int, str]:
    """A new, uniquely named file next to the target, opened for writing.

    Created with mode 0o666 filtered by the umask, as ``open()`` would create the target, rather than
    ``tempfile.mkstemp``'s 0o600: the file is renamed into place and must stay readable by whoever
    could read a plainly written one (e.g. the other users of a shared dataset folder).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".tmp-{secrets.token_hex(4)}-{name}")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name for {name!r} in {folder}")


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w") -> Iterator[IO]:
    """``open(path, mode)`` for writing, made atomic. ``mode`` is "w" (text, UTF-8) or "wb"."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files; mode must be 'w' or 'wb', not {mode!r}")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = _create_temp(folder, os.path.basename(path))
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


def json_safe(obj: Any) -> Any:
    """``obj`` as strict-JSON data: non-finite floats -> ``None`` (e.g. the AP of a class without
    ground truth), mapping keys -> ``str``, tuples -> lists, numpy / torch scalars and arrays ->
    Python numbers and lists (via ``tolist()``)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if not isinstance(obj, (str, int, bool, type(None))) and callable(getattr(obj, "tolist", None)):
        return json_safe(obj.tolist())
    return obj


def write_json(path: str, obj: Any, indent: int | None = 2) -> None:
    """Write ``json_safe(obj)`` to ``path`` atomically as strict JSON, ending in a newline."""
    atomic_write(path, json.dumps(json_safe(obj), indent=indent, allow_nan=False) + "\n")
