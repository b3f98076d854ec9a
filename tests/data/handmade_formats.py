"""Small hand-made files in the real formats (COCO JSON, OID CSVs, images) for the data tests.

Everything here is written from first principles (csv, json, pycocotools, base64, zlib) so that the
tests compare alpseg's readers against an independent encoding, not against its own writers.
"""
import base64
import csv
import json
import os
import zlib
from typing import Dict, List, Sequence

import cv2
import numpy as np
from pycocotools import mask as mask_utils


def write_image(path: str, height: int, width: int, value: int = 80) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img = np.full((height, width, 3), value, dtype=np.uint8)
    img[: height // 2, : width // 2] = (value + 60) % 256  # not flat, so a resize is visible
    assert cv2.imwrite(path, img)
    return path


def coco_categories() -> List[Dict]:
    from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES

    return [{"id": c["id"], "name": c["name"], "supercategory": "x"} for c in COCO_CATEGORIES if c["isthing"]]


def coco_id(name: str) -> int:
    return next(c["id"] for c in coco_categories() if c["name"] == name)


def write_coco_json(path: str, images: List[Dict], annotations: List[Dict]) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    for i, a in enumerate(annotations, start=1):
        a.setdefault("id", i)
        a.setdefault("iscrowd", 0)
        x, y, w, h = a["bbox"]
        a.setdefault("area", float(w * h))
        a.setdefault("segmentation", [[x, y, x + w, y, x + w, y + h, x, y + h]])
    with open(path, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": coco_categories()}, f)
    return path


def challenge_mask(mask: np.ndarray) -> str:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return base64.b64encode(zlib.compress(rle["counts"])).decode("ascii")


def write_csv(path: str, header: Sequence[str], rows: List[Sequence]) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        if header:
            w.writerow(header)
        w.writerows(rows)
    return path


MASK_HEADER = ["ImageID", "LabelName", "ImageWidth", "ImageHeight", "XMin", "YMin", "XMax", "YMax", "IsGroupOf",
               "Mask"]
BOX_HEADER = ["ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax", "IsGroupOf"]
OID_V6_BOX_HEADER = ["ImageID", "Source", "LabelName", "Confidence", "XMin", "XMax", "YMin", "YMax", "IsOccluded",
                     "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside"]
