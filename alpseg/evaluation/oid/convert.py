"""Open Images v6 PNG segmentation release -> the challenge CSVs the metric and the loaders read.

Open Images ships instance masks as binary PNG files listed in
``{split}-annotations-object-segmentation.csv`` (``MaskPath, ImageID, LabelName, BoxID, BoxXMin,
BoxXMax, BoxYMin, BoxYMax, PredictedIoU, Clicks``), while the challenge evaluation reads masks as
``base64(zlib(RLE))`` text in a CSV joined with a box CSV on exact coordinates. This module writes:

* masks CSV: one row per PNG, the mask re-encoded at the image's size (nearest-neighbour resize when
  the PNG has another size), and, when a box CSV is given, the coordinates and ``IsGroupOf`` of the
  box annotation it belongs to (same image and class, coordinates within ``box_tolerance``) so that
  the exact-equality join pairs them;
* boxes CSV: the box annotations of the masked classes on those images (from the OID box CSV), or one
  box per mask if no box CSV is given;
* labels CSV: the verified image-level labels of those classes (from the OID human image-labels CSV),
  or confidence-1 labels of the masked classes if none is given.

Image sizes come from ``image_sizes`` (ImageID -> (width, height)), else from the image files in
``images_dir`` (only their headers are read), else from the PNG itself.
"""
from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

import numpy as np

from .io import BoxRow, ChallengeGroundTruth, LabelRow, MaskRow, read_csv_records, write_ground_truth_csvs
from .masks import encode_challenge_mask

__all__ = ["convert_oid_segmentation_release"]

logger = logging.getLogger(__name__)

SEGMENTATION_COLUMNS = ("MaskPath", "ImageID", "LabelName", "BoxXMin", "BoxXMax", "BoxYMin", "BoxYMax")


def _dict_rows(path: str, required: Iterable[str]) -> List[Dict[str, str]]:
    return list(read_csv_records(path, list(required)))


def _index_files(folder: str) -> Dict[str, str]:
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            out.setdefault(name, os.path.join(root, name))
    return out


def _image_size(image_id: str, image_sizes: Optional[Mapping[str, Tuple[int, int]]],
                images: Optional[Dict[str, str]]) -> Optional[Tuple[int, int]]:
    if image_sizes and image_id in image_sizes:
        w, h = image_sizes[image_id]
        return int(w), int(h)
    if images:
        for ext in (".jpg", ".jpeg", ".png", ".JPG"):
            path = images.get(image_id + ext)
            if path:
                from PIL import Image

                with Image.open(path) as im:
                    return im.size
    return None


def _load_png_mask(path: str, size: Optional[Tuple[int, int]]) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("L")
        if size is not None and im.size != tuple(size):
            im = im.resize(tuple(size), resample=Image.NEAREST)
        return (np.asarray(im) > 0).astype(np.uint8)


def convert_oid_segmentation_release(segmentation_csv: str, masks_dir: str, output_masks: str,
                                     output_boxes: Optional[str] = None, output_labels: Optional[str] = None,
                                     bbox_csv: Optional[str] = None, image_labels_csv: Optional[str] = None,
                                     classes: Optional[Iterable[str]] = None,
                                     image_sizes: Optional[Mapping[str, Tuple[int, int]]] = None,
                                     images_dir: Optional[str] = None, box_tolerance: float = 1e-5,
                                     progress: bool = True) -> Dict[str, int]:
    """Convert (see module docstring); returns counts of what was written and skipped.

    A missing or unreadable PNG, or a row of a class outside ``classes``, is skipped and counted.
    """
    report: Counter = Counter()
    keep = set(classes) if classes is not None else None
    seg = _dict_rows(segmentation_csv, SEGMENTATION_COLUMNS)
    if keep is not None:
        report["segmentation_rows_other_classes"] = sum(1 for r in seg if r["LabelName"] not in keep)
        seg = [r for r in seg if r["LabelName"] in keep]
    image_ids = sorted({r["ImageID"] for r in seg})
    image_set = set(image_ids)
    masked_classes = {r["LabelName"] for r in seg}
    class_set = keep if keep is not None else masked_classes

    boxes_by_image_label: Dict[Tuple[str, str], List[BoxRow]] = defaultdict(list)
    box_rows: List[BoxRow] = []
    if bbox_csv:
        for r in _dict_rows(bbox_csv, ("ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax", "IsGroupOf")):
            if r["ImageID"] not in image_set or r["LabelName"] not in class_set:
                continue
            b = BoxRow(r["ImageID"], r["LabelName"], float(r["XMin"]), float(r["XMax"]), float(r["YMin"]),
                       float(r["YMax"]), int(float(r["IsGroupOf"])))
            box_rows.append(b)
            boxes_by_image_label[(b.image_id, b.label)].append(b)

    files = _index_files(masks_dir)
    images = _index_files(images_dir) if images_dir else None
    sizes: Dict[str, Optional[Tuple[int, int]]] = {}
    mask_rows: List[MaskRow] = []
    try:
        from tqdm import tqdm

        it = tqdm(seg, desc="OID masks -> challenge CSV", unit="mask", disable=not progress, mininterval=2.0)
    except ImportError:  # pragma: no cover
        it = seg
    for r in it:
        image_id, label = r["ImageID"], r["LabelName"]
        path = files.get(os.path.basename(r["MaskPath"]))
        if path is None:
            report["missing_mask_png"] += 1
            continue
        if image_id not in sizes:
            sizes[image_id] = _image_size(image_id, image_sizes, images)
        try:
            mask = _load_png_mask(path, sizes[image_id])
        except (OSError, ValueError) as e:
            logger.warning("skipping unreadable mask %s: %s", path, e)
            report["unreadable_mask_png"] += 1
            continue
        if sizes[image_id] is None:
            sizes[image_id] = (mask.shape[1], mask.shape[0])
        box = (float(r["BoxXMin"]), float(r["BoxXMax"]), float(r["BoxYMin"]), float(r["BoxYMax"]))
        group = 0
        if bbox_csv:
            match = [b for b in boxes_by_image_label.get((image_id, label), [])
                     if max(abs(b.xmin - box[0]), abs(b.xmax - box[1]), abs(b.ymin - box[2]),
                            abs(b.ymax - box[3])) <= box_tolerance]
            if match:
                b = match[0]
                box, group = (b.xmin, b.xmax, b.ymin, b.ymax), b.is_group_of
            else:
                report["masks_without_matching_box"] += 1
        h, w = mask.shape
        mask_rows.append(MaskRow(image_id, label, w, h, box[0], box[2], box[1], box[3], group,
                                 encode_challenge_mask(mask)))
    if not bbox_csv:
        box_rows = [BoxRow(m.image_id, m.label, m.xmin, m.xmax, m.ymin, m.ymax, m.is_group_of) for m in mask_rows]

    label_rows: List[LabelRow] = []
    if image_labels_csv:
        for r in _dict_rows(image_labels_csv, ("ImageID", "LabelName", "Confidence")):
            if r["ImageID"] in image_set and r["LabelName"] in class_set:
                label_rows.append(LabelRow(r["ImageID"], r["LabelName"], float(r["Confidence"])))
    else:
        label_rows = [LabelRow(i, l, 1.0) for i, l in sorted({(m.image_id, m.label) for m in mask_rows})]

    write_ground_truth_csvs(ChallengeGroundTruth(box_rows, mask_rows, label_rows), output_boxes, output_masks,
                            output_labels)
    report.update(images=len(image_ids), mask_rows=len(mask_rows), box_rows=len(box_rows),
                  label_rows=len(label_rows))
    return dict(report)
