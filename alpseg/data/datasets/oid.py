"""Open Images readers: challenge segmentation sets (evaluation) and v6 boxes (the box oracle).

File formats are those of docs/architecture.md and docs/evaluation.md (CSV with header, coordinates
normalized to [0, 1]). Class names become phrases with ``normalize_phrase``; ``category_id`` is the
position of the class in the class-descriptions file, which therefore fixes ``thing_classes``.

* :func:`load_oid_challenge_segmentation`: one dict per image that has challenge GT box or mask rows;
  its annotations are the mask rows, each with a COCO RLE ``segmentation`` (the challenge encoding
  base64(zlib(RLE counts)) undone by ``alpseg.evaluation.oid.masks``) and ``iscrowd`` = IsGroupOf.
  Images with box rows only appear with no annotations: the evaluator reads the complete ground truth
  from the CSVs (metadata ``oid_gt``), the dicts are what the model runs on.
* :func:`load_oid_boxes`: OID v6 training boxes on the images of an image-info JSON (the LocNar-OID
  images), restricted to the class list; group-of boxes get ``iscrowd`` = 1 (ignored in training,
  like COCO crowd regions).
"""
from __future__ import annotations

import json
import logging
import os
from collections import Counter, OrderedDict
from typing import Dict, Iterator, List, Sequence, Tuple

from detectron2.structures import BoxMode
from tqdm import tqdm

from alpseg.text.prompts import normalize_phrase

from .class_lists import index_of

__all__ = [
    "oid_class_phrases",
    "load_oid_challenge_segmentation",
    "load_oid_boxes",
]

logger = logging.getLogger(__name__)


def oid_class_phrases(path: str) -> Tuple[List[str], List[str]]:
    """(MIDs, normalized display names) of a class-descriptions CSV, in file order.

    The file is read by :func:`alpseg.evaluation.oid.io.read_class_descriptions` (the one reader);
    names become phrases here, and two MIDs whose names coincide as phrases are refused, since a
    phrase must name one class.
    """
    from alpseg.evaluation.oid.io import read_class_descriptions

    mid_to_name = read_class_descriptions(path)
    mids = list(mid_to_name)
    names = [normalize_phrase(mid_to_name[m]) for m in mids]
    try:
        index_of(names)
    except ValueError as e:
        raise ValueError(f"{path}: {e}; two MIDs with one display name cannot be told apart as phrases") from None
    return mids, names


def _read_rows(path: str, required: Sequence[str], desc: str) -> Iterator[Dict[str, str]]:
    from alpseg.evaluation.oid.io import read_csv_records

    yield from tqdm(read_csv_records(path, required), desc=desc, unit=" rows", mininterval=5, leave=False,
                    disable=None)


def _box_annotation(row: Dict[str, str], width: int, height: int, label: int, phrase: str) -> Dict:
    """An annotation from a CSV row with normalized XMin/XMax/YMin/YMax and IsGroupOf."""
    return {
        "bbox": [float(row["XMin"]) * width, float(row["YMin"]) * height, float(row["XMax"]) * width,
                 float(row["YMax"]) * height],
        "bbox_mode": BoxMode.XYXY_ABS,
        "category_id": label,
        "phrase": phrase,
        "is_alp": False,
        "iscrowd": int(row["IsGroupOf"]),
    }


def _report(path: str, skipped: Counter) -> None:
    if skipped:
        logger.warning("%s: skipped rows: %s", path, dict(skipped))


def load_oid_challenge_segmentation(masks_csv: str, boxes_csv: str, class_csv: str,
                                    image_root: str) -> List[Dict]:
    """Dataset dicts of a challenge segmentation split (see the module docstring)."""
    from alpseg.evaluation.oid.masks import decode_challenge_mask  # validates the RLE against the size

    mids, names = oid_class_phrases(class_csv)
    cat = index_of(mids)
    images: "OrderedDict[str, Dict]" = OrderedDict()
    skipped: Counter = Counter()
    mask_cols = ["ImageID", "LabelName", "ImageWidth", "ImageHeight", "XMin", "YMin", "XMax", "YMax",
                 "IsGroupOf", "Mask"]
    for row in _read_rows(masks_csv, mask_cols, "OID masks"):
        image_id = row["ImageID"]
        w, h = int(row["ImageWidth"]), int(row["ImageHeight"])
        rec = images.setdefault(image_id, {"file_name": os.path.join(image_root, f"{image_id}.jpg"),
                                           "image_id": image_id, "height": h, "width": w,
                                           "annotations": []})
        if (rec["height"], rec["width"]) != (h, w):
            raise ValueError(f"{masks_csv}: image {image_id} has rows with sizes {rec['width']}x"
                             f"{rec['height']} and {w}x{h}")
        label = cat.get(row["LabelName"])
        if label is None:
            skipped["class not in the class list"] += 1
            continue
        anno = _box_annotation(row, w, h, label, names[label])
        if row["Mask"]:
            try:
                anno["segmentation"] = decode_challenge_mask(row["Mask"], w, h)
            except ValueError:
                skipped["undecodable mask"] += 1
                continue
        rec["annotations"].append(anno)
    for row in _read_rows(boxes_csv, ["ImageID", "LabelName"], "OID boxes"):
        image_id = row["ImageID"]
        if image_id not in images:
            # Box-only image: its size is read from the image when it is loaded.
            images[image_id] = {"file_name": os.path.join(image_root, f"{image_id}.jpg"),
                                "image_id": image_id, "annotations": []}
    _report(masks_csv, skipped)
    dicts = [images[k] for k in sorted(images)]
    logger.info("%s: %d images, %d masked instances of %d classes", masks_csv, len(dicts),
                sum(len(d["annotations"]) for d in dicts), len(mids))
    return dicts


def load_oid_boxes(bbox_csv: str, image_info_json: str, class_csv: str, image_root: str) -> List[Dict]:
    """OID v6 boxes of the classes in ``class_csv`` on the images of ``image_info_json``."""
    mids, names = oid_class_phrases(class_csv)
    cat = index_of(mids)
    with open(image_info_json, encoding="utf-8") as f:
        info = json.load(f)
    records: Dict[str, Dict] = {}
    for im in info["images"]:
        image_id = str(im["id"])
        records[image_id] = {"file_name": os.path.join(image_root, im["file_name"]), "image_id": image_id,
                             "height": int(im["height"]), "width": int(im["width"]), "annotations": []}
    skipped: Counter = Counter()
    cols = ["ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax", "IsGroupOf"]
    for row in _read_rows(bbox_csv, cols, "OID v6 boxes"):
        rec = records.get(row["ImageID"])
        if rec is None:
            continue  # not a LocNar-OID image: most of the 14.6M rows, not worth counting
        label = cat.get(row["LabelName"])
        if label is None:
            skipped["class not in the class list"] += 1
            continue
        if row.get("Confidence", "1") == "0":
            skipped["confidence 0"] += 1
            continue
        w, h = rec["width"], rec["height"]
        rec["annotations"].append(_box_annotation(row, w, h, label, names[label]))
    _report(bbox_csv, skipped)
    dicts = [records[k] for k in sorted(records)]
    logger.info("%s: %d boxes of %d classes on %d images", bbox_csv,
                sum(len(d["annotations"]) for d in dicts), len(mids), len(dicts))
    return dicts
