"""COCO with a subset of its classes: the VOC-masks and zero-shot (ZSD) splits.

``load_coco_split`` reads a standard ``instances_*.json`` with detectron2's ``load_coco_json`` and keeps
only the annotations of the given classes, renumbered in the given order. Images are all kept, also
those left without annotations (detectron2's ``FILTER_EMPTY_ANNOTATIONS`` drops them at training time,
and evaluation must see every image). Each annotation gains the keys of docs/architecture.md:
``phrase`` (the class name) and ``is_alp`` (False).
"""
from __future__ import annotations

import logging
from typing import Dict, List, Sequence

from detectron2.data import MetadataCatalog
from detectron2.data.datasets.coco import load_coco_json

from alpseg.text.prompts import normalize_phrase

from .class_lists import coco_thing_classes, index_of

__all__ = ["load_coco_split", "coco_split_metadata"]

logger = logging.getLogger(__name__)


def load_coco_split(json_file: str, image_root: str, classes: Sequence[str],
                    box_only_classes: Sequence[str] = ()) -> List[Dict]:
    """Dataset dicts of ``json_file`` restricted to ``classes`` (normalized COCO names).

    ``category_id`` of each kept annotation is the position of its class in ``classes``. Annotations
    of ``box_only_classes`` (a subset of ``classes``) lose their ``segmentation``: the box-supervised
    oracle of Table 4 sees boxes, not masks, of the novel classes.
    """
    # load_coco_json only reveals the file's category names through the metadata of a dataset name;
    # use a private scratch name so that the real dataset's metadata is not touched.
    scratch = f"__alpseg_scratch__{json_file}"
    try:
        dicts = load_coco_json(json_file, image_root, dataset_name=scratch)
        file_classes = [normalize_phrase(c) for c in MetadataCatalog.get(scratch).thing_classes]
    finally:
        if scratch in MetadataCatalog:
            MetadataCatalog.remove(scratch)
    missing = [c for c in classes if c not in set(file_classes)]
    if missing:
        raise ValueError(f"{json_file}: categories {missing} are absent from the file's 'categories'")
    target = index_of(classes)
    box_only = set(box_only_classes)
    if box_only - set(classes):
        raise ValueError(f"box-only classes {sorted(box_only - set(classes))} are not among the split's classes")
    remap = {i: target[c] for i, c in enumerate(file_classes) if c in target}
    kept = dropped = 0
    for d in dicts:
        annos = []
        for a in d.get("annotations", []):
            new_id = remap.get(a["category_id"])
            if new_id is None:
                dropped += 1
                continue
            a["category_id"] = new_id
            a["phrase"] = classes[new_id]
            a["is_alp"] = False
            if a["phrase"] in box_only:
                a.pop("segmentation", None)
            annos.append(a)
        kept += len(annos)
        d["annotations"] = annos
    logger.info("%s: kept %d annotations of %d classes, dropped %d of other classes (%d images)",
                json_file, kept, len(classes), dropped, len(dicts))
    return dicts


def coco_split_metadata(classes: Sequence[str], base: Sequence[str], novel: Sequence[str]) -> Dict:
    """Metadata keys of a COCO split: class lists and the COCO id <-> contiguous id map."""
    name_to_id = {n: i for i, n in coco_thing_classes()}
    return {
        "thing_classes": list(classes),
        "base_classes": list(base),
        "novel_classes": list(novel),
        "thing_dataset_id_to_contiguous_id": {name_to_id[c]: i for i, c in enumerate(classes)},
    }
