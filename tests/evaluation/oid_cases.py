"""Builders shared by the OID metric tests and the benchmark: plain-dict cases -> alpseg structures."""
from __future__ import annotations

import numpy as np

from alpseg.evaluation.oid.io import BoxRow, ChallengeGroundTruth, ImagePredictions, LabelRow, MaskRow
from alpseg.evaluation.oid.masks import encode_challenge_mask, encode_rle, rle_to_challenge_string


def rect(h, w, x0, y0, x1, y1):
    """Dense (h, w) mask with pixels [y0, y1) x [x0, x1) set."""
    m = np.zeros((h, w), dtype=np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def to_challenge_gt(gt_boxes, gt_masks, gt_labels) -> ChallengeGroundTruth:
    def enc(m):
        if m is None:
            return ""
        return rle_to_challenge_string(m) if isinstance(m, dict) else encode_challenge_mask(m)

    def size(m):
        if isinstance(m, dict):
            return m["size"][1], m["size"][0]
        return m.shape[1], m.shape[0]

    return ChallengeGroundTruth(
        boxes=[BoxRow(r["image"], r["label"], r["xmin"], r["xmax"], r["ymin"], r["ymax"], int(r["group"]))
               for r in gt_boxes],
        masks=[MaskRow(r["image"], r["label"], *size(r["mask"]), r["xmin"], r["ymin"], r["xmax"], r["ymax"],
                       int(r["group"]), enc(r["mask"])) for r in gt_masks],
        labels=[LabelRow(r["image"], r["label"], float(r["conf"])) for r in gt_labels],
    )


def to_predictions(preds):
    out = {}
    for p in preds:
        out.setdefault(p["image"], ([], [], []))
        labels, scores, masks = out[p["image"]]
        labels.append(p["label"])
        scores.append(p["score"])
        masks.append(p["mask"] if isinstance(p["mask"], dict) else encode_rle(p["mask"]))
    return {k: ImagePredictions(v[0], np.asarray(v[1], dtype=np.float64), v[2]) for k, v in out.items()}


def box_of(mask, h=None, w=None):
    """Normalized (xmin, xmax, ymin, ymax) extent of a dense mask, as GT rows store it."""
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    return xs.min() / w, (xs.max() + 1) / w, ys.min() / h, (ys.max() + 1) / h


def gt_instance(image, label, mask, group=0, with_box=True, with_mask=True, box=None):
    """(box rows, mask rows) of one GT object; ``box`` defaults to the mask's extent."""
    xmin, xmax, ymin, ymax = box if box is not None else box_of(mask)
    row = {"image": image, "label": label, "xmin": xmin, "xmax": xmax, "ymin": ymin, "ymax": ymax, "group": group}
    boxes = [dict(row)] if with_box else []
    masks = [dict(row, mask=mask)] if with_mask else []
    return boxes, masks
