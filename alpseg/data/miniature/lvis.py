"""A miniature LVIS v1 tree made from the miniature COCO (same images, LVIS JSON format).

``write_miniature_lvis(root)`` reads ``root/coco/annotations/instances_{train,val}2017.json`` and
writes ``root/lvis/lvis_v1_{train,val}.json`` the way LVIS ships them: all 1203 v1 categories
(ids, names, synsets, frequency groups), images that point to COCO files through ``coco_url``,
``neg_category_ids`` / ``not_exhaustive_category_ids`` per image, and the same instances with their
category mapped by name (or synonym) from COCO to LVIS.
"""
from __future__ import annotations

import json
import os
from typing import Dict

from alpseg.utils.io import atomic_write_json

__all__ = ["write_miniature_lvis"]


def _lvis_id_by_name() -> Dict[str, int]:
    from detectron2.data.datasets.lvis_v1_categories import LVIS_CATEGORIES

    index: Dict[str, int] = {}
    for c in LVIS_CATEGORIES:  # exact names take precedence over synonyms
        for s in c["synonyms"]:
            index.setdefault(s.replace("_", " "), c["id"])
    for c in LVIS_CATEGORIES:
        index[c["name"].replace("_", " ")] = c["id"]
    return index


def write_miniature_lvis(root: str) -> Dict[str, str]:
    """Write ``root/lvis/lvis_v1_{train,val}.json`` from the miniature COCO; returns the paths."""
    from detectron2.data.datasets.lvis_v1_categories import LVIS_CATEGORIES

    lvis_id = _lvis_id_by_name()
    categories = [dict(c, image_count=0, instance_count=0) for c in LVIS_CATEGORIES]
    by_id = {c["id"]: c for c in categories}
    paths = {}
    for split in ("train", "val"):
        with open(os.path.join(root, "coco", "annotations", f"instances_{split}2017.json"), encoding="utf-8") as f:
            coco = json.load(f)
        name_of = {c["id"]: c["name"] for c in coco["categories"]}
        annotations, present = [], {}
        for a in coco["annotations"]:
            name = name_of[a["category_id"]]
            if name not in lvis_id:
                raise ValueError(f"COCO class {name!r} has no LVIS v1 category")
            cid = lvis_id[name]
            annotations.append({k: a[k] for k in ("id", "image_id", "bbox", "area", "segmentation")}
                               | {"category_id": cid})
            present.setdefault(a["image_id"], set()).add(cid)
        images = []
        for im in coco["images"]:
            cats = present.get(im["id"], set())
            # one category verified absent per image (LVIS's negative labels), none marked not exhaustive
            negative = next(c["id"] for c in categories if c["id"] not in cats)
            images.append({"id": im["id"], "width": im["width"], "height": im["height"],
                           "coco_url": f"http://images.cocodataset.org/{split}2017/{im['file_name']}",
                           "neg_category_ids": [negative], "not_exhaustive_category_ids": []})
            for cid in cats:
                by_id[cid]["image_count"] += 1
        for a in annotations:
            by_id[a["category_id"]]["instance_count"] += 1
        paths[split] = os.path.join(root, "lvis", f"lvis_v1_{split}.json")
        atomic_write_json(paths[split], {"info": {"description": "alpseg miniature LVIS v1"}, "licenses": [],
                                  "images": images, "annotations": annotations, "categories": categories})
    return paths
