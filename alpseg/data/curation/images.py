"""Image sizes and file names of a curation run (a COCO-style JSON)."""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Mapping, Sequence, Union

__all__ = ["load_image_info"]


def load_image_info(source: Union[str, os.PathLike, Mapping[str, Any], Sequence[Mapping[str, Any]]]
                    ) -> Dict[str, Dict[str, Any]]:
    """Image sizes and file names keyed by ``str(id)``, from a COCO-style JSON (path or dict).

    Every entry needs ``id``, ``file_name`` and positive ``width``/``height``; a bad entry is an
    error that names it (this file is an input of the run, not data to skip over).
    """
    name = "image info"
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        with open(source, encoding="utf-8") as f:
            source = json.load(f)
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

