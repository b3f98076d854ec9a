"""Image sizes -> a COCO-style image-info JSON (``{"images": [{id, file_name, width, height}]}``).

ALP curation needs each narrative's image size to turn normalized mouse traces into pixels. COCO's
instances JSON already carries sizes; Open Images ships none, so :func:`write_image_info` reads them
from the image headers (no pixel decoding), in parallel, with a progress bar. Sizes already measured
are appended to ``<output>.partial.jsonl`` as they come, so an interrupted run resumes where it
stopped; the final JSON is written atomically. Missing or unreadable images are left out, counted and
listed in the returned report (curation then reports their narratives as images without info).
"""
from __future__ import annotations

import json
import logging
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from tqdm import tqdm

from alpseg.utils.io import atomic_write_json

__all__ = ["narrative_image_ids", "image_size", "write_image_info"]

logger = logging.getLogger(__name__)


def narrative_image_ids(paths: Sequence[str]) -> Tuple[List[str], Counter]:
    """Sorted unique ``image_id`` values of Localized Narratives JSONL files (and counts of bad lines)."""
    from alpseg.data.narratives import iter_narrative_lines

    ids, bad = set(), Counter()
    for _, _, _, raw in iter_narrative_lines(list(paths)):
        try:
            ids.add(str(json.loads(raw)["image_id"]))
        except (ValueError, KeyError, TypeError):
            bad["unreadable narrative line"] += 1
    return sorted(ids), bad


def image_size(path: str) -> Optional[Tuple[int, int]]:
    """(width, height) from the image header, or None when the file is missing or not an image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return int(im.width), int(im.height)
    except (OSError, UnidentifiedImageError):
        return None


def _measure(args: Tuple[str, str]) -> Tuple[str, Optional[Tuple[int, int]]]:
    image_id, path = args
    return image_id, image_size(path)


def _read_partial(path: str) -> Dict[str, Optional[List[int]]]:
    done: Dict[str, Optional[List[int]]] = {}
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                    done[rec["id"]] = rec["size"]
                except (ValueError, KeyError):
                    continue  # a line cut by the interruption is measured again
    return done


def write_image_info(image_ids: Iterable[str], images_dir: str, output: str, extension: str = ".jpg",
                     workers: int = 4, progress: bool = True) -> Dict[str, object]:
    """Measure ``images_dir/<id><extension>`` for every id and write ``output`` (see module docstring)."""
    image_ids = sorted(set(image_ids))
    partial = output + ".partial.jsonl"
    done = _read_partial(partial)
    todo = [(i, os.path.join(images_dir, i + extension)) for i in image_ids if i not in done]
    if done:
        logger.info("resuming: %d of %d images already measured", len(image_ids) - len(todo), len(image_ids))
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(partial, "a", encoding="utf-8") as log:
        results: Iterable[Tuple[str, Optional[Tuple[int, int]]]]
        pool = ProcessPoolExecutor(workers) if workers > 1 else None
        try:
            results = pool.map(_measure, todo, chunksize=256) if pool else map(_measure, todo)
            for image_id, size in tqdm(results, total=len(todo), desc="image sizes", unit="img",
                                       disable=not progress, mininterval=2):
                done[image_id] = list(size) if size else None
                log.write(json.dumps({"id": image_id, "size": done[image_id]}) + "\n")
        finally:
            if pool:
                pool.shutdown()
    images, missing = [], []
    for i in image_ids:
        if done.get(i):
            w, h = done[i]
            images.append({"id": i, "file_name": i + extension, "width": w, "height": h})
        else:
            missing.append(i)
    atomic_write_json(output, {"images": images})
    os.remove(partial)
    if missing:
        logger.warning("%d of %d images are missing or unreadable (first: %s)", len(missing), len(image_ids),
                       missing[:5])
    return {"images": len(images), "missing_or_unreadable": len(missing), "missing_examples": missing[:20]}
