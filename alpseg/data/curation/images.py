"""Image sizes and file names of a curation run (a COCO-style JSON)."""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Dict, Mapping, Sequence, Tuple, Union

__all__ = ["load_image_info", "read_image_info"]


def _read_json(path: str) -> Tuple[Any, bytes]:
    """The decoded JSON of a file and its bytes; an unreadable file is a one-line error naming it."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return json.loads(data), data
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a JSON file ({e}); pass a COCO-style JSON as --image-info") from None


def read_image_info(path: str) -> Tuple[Dict[str, Dict[str, Any]], str]:
    """:func:`load_image_info` of a file, and the SHA-256 of its bytes (one read: for resume checks)."""
    parsed, data = _read_json(path)
    return load_image_info(parsed, name=path), hashlib.sha256(data).hexdigest()


def load_image_info(source: Union[str, os.PathLike, Mapping[str, Any], Sequence[Mapping[str, Any]]],
                    name: str = "image info") -> Dict[str, Dict[str, Any]]:
    """Image sizes and file names keyed by ``str(id)``, from a COCO-style JSON (path or dict).

    Every entry needs ``id``, ``file_name`` and positive ``width``/``height``; a bad entry is an
    error that names it (this file is an input of the run, not data to skip over).
    """
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        source = _read_json(name)[0]
    images = source.get("images") if isinstance(source, Mapping) else source
    if not isinstance(images, list):
        raise ValueError(f"{name}: expected a COCO-style JSON with an 'images' list")
    out: Dict[str, Dict[str, Any]] = {}
    for k, im in enumerate(images):
        if not isinstance(im, Mapping) or "id" not in im or not isinstance(im.get("file_name"), str):
            raise ValueError(f"{name}: images[{k}] needs 'id' and 'file_name'")
        w, h = im.get("width"), im.get("height")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in (w, h)):
            raise ValueError(f"{name}: images[{k}] (id {im['id']!r}) needs positive 'width' and 'height'")
        key = str(im["id"])
        if key in out:
            raise ValueError(f"{name}: image id {im['id']!r} appears twice")
        out[key] = {"id": im["id"], "file_name": im["file_name"], "width": w, "height": h}
    return out

