"""Writers of the miniature world in the real file formats (COCO JSON, LocNar JSONL, OID CSVs)."""
from __future__ import annotations

import csv
import os
from typing import Any, Dict, Iterable, List, Sequence

import cv2
import numpy as np

from alpseg.evaluation.oid.masks import encode_challenge_mask
from alpseg.utils.io import atomic_open

from .world import CLASSES, MiniObject, Scene, object_mask, render_scene

__all__ = ["write_image", "coco_json", "write_csv", "oid_box_rows", "challenge_rows"]


def write_csv(path: str, header: Sequence[str] | None, rows: Iterable[Sequence[Any]]) -> None:
    with atomic_open(path) as f:
        writer = csv.writer(f)
        if header:
            writer.writerow(header)
        writer.writerows(rows)


def write_image(path: str, scene: Scene) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    bgr = cv2.cvtColor(render_scene(scene), cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(path, bgr, [cv2.IMWRITE_JPEG_QUALITY, 95]):
        raise OSError(f"could not write {path}")


def _coco_annotation(obj: MiniObject, scene: Scene, ann_id: int, image_id: int) -> Dict[str, Any]:
    mask = object_mask(obj, scene.height, scene.width)
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": obj.cls.coco_id,
        # The polygon is the drawn outline; pycocotools rasterises it to (almost) the drawn mask.
        "segmentation": [[round(float(v), 2) for v in obj.polygon.reshape(-1)]],
        "area": float(mask.sum()),
        "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
        "iscrowd": 0,
    }


def coco_json(scenes: Sequence[Scene], image_ids: Sequence[int], file_names: Sequence[str]) -> Dict[str, Any]:
    """A COCO instances JSON with all 80 COCO categories (real ids), for scenes of base classes."""
    from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES

    categories = [{"id": c["id"], "name": c["name"], "supercategory": "miniature"}
                  for c in COCO_CATEGORIES if c["isthing"]]
    images, annotations = [], []
    for scene, image_id, file_name in zip(scenes, image_ids, file_names):
        images.append({"id": image_id, "file_name": file_name, "width": scene.width, "height": scene.height})
        for obj in scene.objects:
            if obj.cls.coco_id is None:
                raise ValueError(f"class {obj.cls.name!r} is not a COCO class")
            annotations.append(_coco_annotation(obj, scene, len(annotations) + 1, image_id))
    return {"info": {"description": "alpseg miniature COCO"}, "licenses": [], "images": images,
            "annotations": annotations, "categories": categories}


def _norm_box(obj: MiniObject, scene: Scene) -> List[float]:
    x0, y0, x1, y1 = obj.box
    return [max(0.0, x0 / scene.width), min(1.0, x1 / scene.width),
            max(0.0, y0 / scene.height), min(1.0, y1 / scene.height)]


def oid_box_rows(image_id: str, scene: Scene) -> List[List[Any]]:
    """Rows of OID v6 `*-annotations-bbox.csv` for one scene."""
    rows = []
    for obj in scene.objects:
        xmin, xmax, ymin, ymax = _norm_box(obj, scene)
        rows.append([image_id, "xclick", obj.cls.oid_mid, 1, f"{xmin:.6f}", f"{xmax:.6f}", f"{ymin:.6f}",
                     f"{ymax:.6f}", 0, 0, 0, 0, 0])
    return rows


def challenge_rows(image_id: str, scene: Scene, rng: np.random.Generator):
    """(box rows, mask rows, label rows) of the challenge segmentation CSVs for one scene.

    Image-level labels: every present class verified (1); one absent class verified absent (0), which
    makes it evaluatable on this image (its detections there are false positives).
    """
    boxes, masks, labels = [], [], []
    for obj in scene.objects:
        xmin, xmax, ymin, ymax = _norm_box(obj, scene)
        boxes.append([image_id, obj.cls.oid_mid, f"{xmin:.6f}", f"{xmax:.6f}", f"{ymin:.6f}", f"{ymax:.6f}", 0])
        m = object_mask(obj, scene.height, scene.width)
        masks.append([image_id, obj.cls.oid_mid, scene.width, scene.height, f"{xmin:.6f}", f"{ymin:.6f}",
                      f"{xmax:.6f}", f"{ymax:.6f}", 0, encode_challenge_mask(m)])
    present = sorted({o.cls.oid_mid for o in scene.objects})
    labels += [[image_id, mid, 1] for mid in present]
    absent = [c.oid_mid for c in CLASSES if c.oid_mid not in present]
    labels.append([image_id, absent[int(rng.integers(len(absent)))], 0])
    return boxes, masks, labels
