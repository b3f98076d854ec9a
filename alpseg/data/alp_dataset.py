"""ALPS.json (``tools/curate_alps.py`` output) -> detectron2 dataset dicts.

Two views of one file:

* :func:`load_alp_json`: one record per image with ALP annotations, each
  ``{"bbox": XYXY_ABS, "bbox_mode": BoxMode.XYXY_ABS, "phrase", "is_alp": True}`` and no
  ``segmentation`` (ALPs never train the mask head);
* :func:`load_alp_image_labels_json`: the "ALPs without boxes" variant (Detic-style image labels),
  one record per image with ``image_phrases`` (its sorted unique phrases) and no annotations.

Boxes are clipped to the image; a box with no area left is dropped and counted in the log (curation
already drops degenerate boxes, so this only catches hand-edited or foreign files).

:func:`merge_alps_per_image` joins a mask dataset and the ALPs of the *same* images (LocNar-COCO on
COCO) into one record per image, the alternative to alternating their batches (docs/fcos_mo.md).
"""
from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from detectron2.structures import BoxMode

__all__ = ["load_alp_json", "load_alp_image_labels_json", "merge_alps_per_image"]

logger = logging.getLogger(__name__)


def _read(json_file: str) -> Dict[str, Any]:
    from detectron2.utils.file_io import PathManager

    with PathManager.open(json_file, "r") as f:
        data = json.load(f)
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{json_file}: not an ALPS.json (no '{key}' list); make it with tools/curate_alps.py")
    return data


def _image_record(im: Dict[str, Any], image_root: str) -> Dict[str, Any]:
    return {"file_name": os.path.join(image_root, im["file_name"]), "image_id": im["id"],
            "height": int(im["height"]), "width": int(im["width"])}


def load_alp_json(json_file: str, image_root: str, dataset_name: Optional[str] = None) -> List[Dict[str, Any]]:
    """Images with their ALP boxes, in detectron2's dataset-dict format (one dict per image).

    ``image_root`` is joined with each image's ``file_name``. Images without any ALP are left out.
    """
    data = _read(json_file)
    by_image: Dict[str, List[Dict[str, Any]]] = defaultdict(list)
    sizes = {str(im["id"]): (float(im["width"]), float(im["height"])) for im in data["images"]}
    dropped = 0
    for ann in data["annotations"]:
        key = str(ann["image_id"])
        if key not in sizes:
            raise ValueError(f"{json_file}: annotation {ann.get('id')} refers to unknown image {ann['image_id']!r}")
        w, h = sizes[key]
        x, y, bw, bh = ann["bbox"]
        x1, y1 = min(max(x, 0.0), w), min(max(y, 0.0), h)
        x2, y2 = min(max(x + bw, 0.0), w), min(max(y + bh, 0.0), h)
        if x2 <= x1 or y2 <= y1:
            dropped += 1
            continue
        by_image[key].append({"bbox": [x1, y1, x2, y2], "bbox_mode": BoxMode.XYXY_ABS,
                              "phrase": ann["phrase"], "is_alp": True})
    if dropped:
        logger.warning("%s: dropped %d ALP boxes with no area inside their image", json_file, dropped)
    records = []
    for im in data["images"]:
        annos = by_image.get(str(im["id"]))
        if annos:
            records.append(dict(_image_record(im, image_root), annotations=annos))
    logger.info("Loaded %d images with %d ALPs from %s%s", len(records), sum(len(r["annotations"]) for r in records),
                json_file, f" ({dataset_name})" if dataset_name else "")
    return records


def load_alp_image_labels_json(json_file: str, image_root: str,
                               dataset_name: Optional[str] = None) -> List[Dict[str, Any]]:
    """Images with their phrases as image-level labels (``image_phrases``), boxes discarded.

    Records carry ``annotations: []`` so that generic detectron2 code finds the key; a training
    loader for this variant must therefore not filter images with empty annotations.
    """
    data = _read(json_file)
    phrases: Dict[str, set] = defaultdict(set)
    for ann in data["annotations"]:
        phrases[str(ann["image_id"])].add(ann["phrase"])
    records = [dict(_image_record(im, image_root), annotations=[], image_phrases=sorted(phrases[str(im["id"])]))
               for im in data["images"] if phrases.get(str(im["id"]))]
    logger.info("Loaded %d images with image-level phrases from %s%s", len(records), json_file,
                f" ({dataset_name})" if dataset_name else "")
    return records


def _xyxy(annotations: Sequence[Dict[str, Any]]) -> np.ndarray:
    boxes = [BoxMode.convert(list(a["bbox"]), a.get("bbox_mode", BoxMode.XYWH_ABS), BoxMode.XYXY_ABS)
             for a in annotations]
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of XYXY boxes ``(N, 4)`` x ``(M, 4)``."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).clip(min=0).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).clip(min=0).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def merge_alps_per_image(mask_dicts: List[Dict[str, Any]], alp_dicts: List[Dict[str, Any]],
                         overlap_iou: float = 0.5, dataset_name: str = "") -> List[Dict[str, Any]]:
    """One record per image with its mask annotations and the ALPs that describe other objects.

    Images are matched by ``image_id`` (compared as strings). An ALP whose box has IoU >= ``overlap_iou``
    with the box of any of the image's annotations (crowd ones included) is dropped: that object is
    already supervised by its mask, under its class name. The other ALPs are appended (``is_alp``
    True), so an object without a mask annotation (a novel class) is foreground in the same batch in
    which the masks are. Images with ALPs but no record in ``mask_dicts`` are added as ALP-only
    records; records are copied, the inputs are not modified. The counts are logged.
    """
    if not 0.0 < overlap_iou <= 1.0:
        raise ValueError(f"overlap_iou must be in (0, 1], got {overlap_iou}")
    alps_by_image: Dict[str, Dict[str, Any]] = {}
    for d in alp_dicts:
        key = str(d["image_id"])
        if key in alps_by_image:
            raise ValueError(f"{dataset_name or 'ALP dataset'}: image {key!r} appears twice")
        alps_by_image[key] = d
    merged, kept, dropped, used = [], 0, 0, set()
    for d in mask_dicts:
        key = str(d["image_id"])
        record = dict(d, annotations=list(d.get("annotations", [])))
        alp = alps_by_image.get(key)
        if alp is not None:
            used.add(key)
            alp_annos = alp.get("annotations", [])
            if record["annotations"] and alp_annos:
                overlap = (_iou(_xyxy(alp_annos), _xyxy(record["annotations"])) >= overlap_iou).any(axis=1)
            else:
                overlap = np.zeros(len(alp_annos), dtype=bool)
            record["annotations"] += [a for a, o in zip(alp_annos, overlap) if not o]
            kept += int((~overlap).sum())
            dropped += int(overlap.sum())
        merged.append(record)
    alp_only = [dict(d, annotations=list(d["annotations"])) for k, d in alps_by_image.items() if k not in used]
    kept += sum(len(d["annotations"]) for d in alp_only)
    logger.info("%s: merged ALPs into %d mask images: kept %d ALPs, dropped %d overlapping a mask annotation "
                "(IoU >= %.2f); %d ALP-only images added", dataset_name or "merge", len(used), kept, dropped,
                overlap_iou, len(alp_only))
    return merged + alp_only
