"""The Open Images challenge instance-segmentation metric, TF-free and fast.

This reproduces the TF Object Detection API challenge evaluation (``oid_challenge_evaluation.py`` with
``OpenImagesChallengeEvaluator(evaluate_masks=True)``) decision by decision, but works on COCO RLE with
pycocotools instead of dense masks, and evaluates images in parallel processes.

Ground truth (:func:`prepare_ground_truth`)
    Box rows and mask rows are full-outer-joined on (ImageID, LabelName, XMin, XMax, YMin, YMax,
    IsGroupOf) with exact float equality, in the key order pandas' outer merge produces (sorted by
    LabelName, ImageID, then the box). A joined row whose mask is missing or empty is *mask-less*.
    The evaluatable classes of an image are its image-level labels of any confidence plus the
    classes of its GT rows. Counted GT of a class: non-group-of rows with a non-empty mask, plus
    ``group_of_weight`` per group-of row with a non-empty mask.

Per image and class (:func:`match_class`), detections sorted by descending score:
    1. best mask IoU with the non-group-of masked GT; >= threshold and that GT still free -> TP,
       otherwise the detection stays a FP (no fall-back to the second best GT);
    2. a non-TP whose best mask IoA (intersection / detection area) with a group-of masked GT is
       >= threshold is absorbed: ignored, and with weight w > 0 every group-of GT that absorbed
       something yields one TP of weight w at its highest absorbed score (if that score is > 0);
    3. remaining detections vs mask-less non-group-of GT boxes by box IoU (detection box = extent
       of its mask): a free box is taken and the detection ignored; a taken box leaves it a FP;
    4. remaining detections with box IoA >= threshold against a mask-less group-of box: ignored.

Detections of classes that are not evaluatable in their image, on images without GT rows, with
empty masks, or with MIDs outside the class list are dropped (and counted in ``skipped``).

AP per class: the (score, TP weight) pairs of all images, concatenated in ImageID order, sorted by
descending score (ties: the later pair first, which is what TF's ``argsort(scores)[::-1]`` gives
whenever numpy's sort is stable, e.g. for all arrays of up to 16 scores); VOC all-point area under
the monotone precision envelope. mAP averages classes with counted GT.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import repeat
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .hierarchy import ClassHierarchy, expand_ground_truth, load_hierarchy
from .io import (
    ChallengeGroundTruth,
    ChallengePredictionsCSV,
    ImagePredictions,
    read_class_descriptions,
    read_class_list,
    read_ground_truth_csvs,
)
from .masks import RLE, decode_challenge_masks, rle_areas, rle_extents_normalized, rle_has_extent, rle_iou

__all__ = [
    "PreparedImage",
    "PreparedGroundTruth",
    "prepare_ground_truth",
    "match_class",
    "evaluate_image",
    "average_precision",
    "evaluate_oid_challenge",
    "evaluate_oid_challenge_files",
]

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------
# ground truth


@dataclass
class PreparedImage:
    """GT of one image after the join. Boxes are normalized ``[xmin, ymin, xmax, ymax]``."""

    labels: np.ndarray  # (N,) int64 class index
    boxes: np.ndarray  # (N, 4) float64
    is_group_of: np.ndarray  # (N,) bool
    masks: List[Optional[RLE]]  # None = mask-less (no mask row, or an empty mask)
    evaluatable: np.ndarray  # sorted unique class indices
    size: Optional[Tuple[int, int]]  # (height, width) of its masks; None if it has none
    # normalized extents [xmin, ymin, xmax, ymax] of the masks (zeros where mask-less): a detection whose
    # extent does not meet a mask's extent has IoU / IoA 0 with it, so the pair is never decoded
    mask_boxes: Optional[np.ndarray] = None

    @property
    def has_mask(self) -> np.ndarray:
        return np.array([m is not None for m in self.masks], dtype=bool)


@dataclass
class PreparedGroundTruth:
    class_mids: List[str]
    images: Dict[str, PreparedImage]
    skipped: Counter = field(default_factory=Counter)

    @property
    def class_index(self) -> Dict[str, int]:
        return {m: i for i, m in enumerate(self.class_mids)}

    def counted_gt(self, group_of_weight: float) -> np.ndarray:
        """Counted GT per class: masked non-group-of rows + weight x masked group-of rows."""
        counts = np.zeros(len(self.class_mids), dtype=np.float64)
        for img in self.images.values():
            has = img.has_mask
            np.add.at(counts, img.labels[has & ~img.is_group_of], 1.0)
            if group_of_weight:
                np.add.at(counts, img.labels[has & img.is_group_of], float(group_of_weight))
        return counts


def _join_boxes_and_masks(gt: ChallengeGroundTruth):
    """Full outer join of box and mask rows; yields (key, mask row or None) in pandas' order."""
    boxes_by_key: Dict[tuple, int] = defaultdict(int)
    for r in gt.boxes:
        boxes_by_key[(r.label, r.image_id, r.xmin, r.xmax, r.ymin, r.ymax, int(r.is_group_of))] += 1
    masks_by_key: Dict[tuple, list] = defaultdict(list)
    for r in gt.masks:
        masks_by_key[(r.label, r.image_id, r.xmin, r.xmax, r.ymin, r.ymax, int(r.is_group_of))].append(r)
    for key in sorted(set(boxes_by_key) | set(masks_by_key)):
        n_left = boxes_by_key.get(key, 0)
        rights = masks_by_key.get(key, [])
        if n_left and rights:  # duplicate keys give the cartesian product, left-major, as in pandas
            for _ in range(n_left):
                for m in rights:
                    yield key, m
        elif n_left:
            for _ in range(n_left):
                yield key, None
        else:
            for m in rights:
                yield key, m


def prepare_ground_truth(gt: ChallengeGroundTruth, class_mids: Optional[Sequence[str]] = None,
                         hierarchy: Union[None, str, Mapping, ClassHierarchy] = None) -> PreparedGroundTruth:
    """Join, decode and index the GT rows (optionally after hierarchical expansion).

    ``class_mids`` is the class list (e.g. from the class-descriptions file); by default every label
    that occurs in the GT. GT rows of other labels are dropped and counted (the TF tool would stop with
    a ``KeyError``). Raises ``ValueError`` if an image's masks have different sizes.
    """
    if hierarchy is not None:
        gt = expand_ground_truth(gt, hierarchy)
    skipped = Counter(gt.skipped)
    if class_mids is None:
        class_mids = sorted({r.label for r in gt.boxes} | {r.label for r in gt.masks} | {r.label for r in gt.labels})
    class_mids = list(dict.fromkeys(class_mids))
    index = {m: i for i, m in enumerate(class_mids)}

    joined = []
    for key, mrow in _join_boxes_and_masks(gt):
        if key[0] not in index:
            skipped["gt_rows_of_unknown_classes"] += 1
            continue
        joined.append((key, mrow))
    with_mask = [i for i, (_, mrow) in enumerate(joined) if mrow is not None and mrow.mask]
    decoded, errors = decode_challenge_masks([joined[i][1].mask for i in with_mask],
                                             [joined[i][1].width for i in with_mask],
                                             [joined[i][1].height for i in with_mask])
    for i, err in zip(with_mask, errors):
        if err:
            key = joined[i][0]
            raise ValueError(f"GT mask of image {key[1]}, class {key[0]}: {err}")
    rles: List[Optional[RLE]] = [None] * len(joined)
    for i, rle in zip(with_mask, decoded):
        rles[i] = rle
    areas = rle_areas(decoded)
    extents = np.zeros((len(joined), 4), dtype=np.float64)  # one pycocotools call for all GT masks
    extents[with_mask] = rle_extents_normalized(decoded)

    per_image: Dict[str, dict] = defaultdict(lambda: {"labels": [], "boxes": [], "group": [], "masks": [],
                                                      "extents": [], "classes": set(), "size": None})
    for i, area in zip(with_mask, areas):
        key, mrow = joined[i]
        img = per_image[key[1]]
        size = (int(mrow.height), int(mrow.width))
        if img["size"] is None:
            img["size"] = size
        elif img["size"] != size:
            raise ValueError(f"GT masks of image {key[1]} have different sizes {img['size']} and {size} "
                             "(height, width); every mask of an image must be at the image's size")
        if int(area) == 0:
            rles[i] = None  # an empty mask is no mask
    for (key, _), rle, extent in zip(joined, rles, extents):
        label, image_id, xmin, xmax, ymin, ymax, group = key
        img = per_image[image_id]
        img["extents"].append(extent if rle is not None else np.zeros(4))
        img["labels"].append(index[label])
        img["boxes"].append((xmin, ymin, xmax, ymax))
        img["group"].append(bool(group))
        img["masks"].append(rle)
        img["classes"].add(index[label])
    for r in gt.labels:
        if r.label not in index:
            skipped["gt_labels_of_unknown_classes"] += 1
            per_image[r.image_id]  # the image still has GT rows: its other detections are dropped
            continue
        per_image[r.image_id]["classes"].add(index[r.label])

    images = {}
    for image_id in sorted(per_image):
        d = per_image[image_id]
        images[image_id] = PreparedImage(
            labels=np.asarray(d["labels"], dtype=np.int64),
            boxes=np.asarray(d["boxes"], dtype=np.float64).reshape(-1, 4),
            is_group_of=np.asarray(d["group"], dtype=bool),
            masks=d["masks"],
            evaluatable=np.asarray(sorted(d["classes"]), dtype=np.int64),
            size=d["size"],
            mask_boxes=np.asarray(d["extents"], dtype=np.float64).reshape(-1, 4),
        )
    return PreparedGroundTruth(class_mids=class_mids, images=images, skipped=skipped)


# ----------------------------------------------------------------------------------------------------
# per image matching


def _box_intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) intersection areas of ``[xmin, ymin, xmax, ymax]`` boxes."""
    h = np.maximum(0.0, np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]))
    w = np.maximum(0.0, np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]))
    return h * w


def _box_area(a: np.ndarray) -> np.ndarray:
    return (a[:, 3] - a[:, 1]) * (a[:, 2] - a[:, 0])


def _box_iou(det: np.ndarray, gt: np.ndarray) -> np.ndarray:
    inter = _box_intersection(det, gt)
    union = _box_area(det)[:, None] + _box_area(gt)[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union


def _box_ioa(det: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Intersection over the *detection's* area (TF's ``ioa(groundtruth, detection)``, transposed)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return _box_intersection(det, gt) / _box_area(det)[:, None]


def _greedy_free_match(overlap: np.ndarray, eligible: np.ndarray, thr: float) -> Tuple[np.ndarray, np.ndarray]:
    """Detections (in order) take their best GT if overlap >= thr and it is free.

    Returns (matched, candidates), both bool per detection: ``candidates`` reached ``thr`` with their
    best GT, ``matched`` are the candidates that got it. A detection whose best GT is already taken is
    not matched (TF has no fall-back to the next best GT).
    """
    best = np.argmax(overlap, axis=1)
    best_val = overlap[np.arange(overlap.shape[0]), best]
    candidates = eligible & (best_val >= thr)
    matched = np.zeros(overlap.shape[0], dtype=bool)
    if candidates.any():
        # the first candidate (in score order) of each GT gets it; later ones find it taken
        cand_idx = np.flatnonzero(candidates)
        _, first = np.unique(best[cand_idx], return_index=True)
        matched[cand_idx[first]] = True
    return matched, candidates


def match_class(det_scores: np.ndarray, det_masks: List[RLE], det_boxes: np.ndarray,
                gt_masks: List[Optional[RLE]], gt_boxes: np.ndarray, gt_group: np.ndarray,
                group_of_weight: float = 1.0, iou_threshold: float = 0.5,
                gt_mask_boxes: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """(scores, TP weights) of one class in one image, in TF's output order.

    Detections must already be valid (non-empty masks of the GT's size); they are sorted here by
    descending score (ties: the later detection first). Output: the non-ignored detections in that
    order with weight 1.0 (TP) or 0.0 (FP), then one entry per absorbing group-of mask GT (weight w).
    ``gt_mask_boxes`` (the extents of ``gt_masks``, as :func:`rle_extents_normalized` gives them) only
    saves work: mask pairs whose extents do not meet are not decoded.
    """
    gt = PreparedImage(labels=np.zeros(len(gt_masks), dtype=np.int64),
                       boxes=np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4),
                       is_group_of=np.asarray(gt_group, dtype=bool).reshape(-1), masks=list(gt_masks),
                       evaluatable=np.zeros(1, dtype=np.int64), size=None, mask_boxes=gt_mask_boxes)
    n = len(det_masks)
    _, scores, tp = _match_image(np.zeros(n, dtype=np.int64), np.asarray(det_scores, dtype=np.float64).reshape(-1),
                                 list(det_masks), np.asarray(det_boxes, dtype=np.float64).reshape(-1, 4), gt,
                                 group_of_weight, iou_threshold)
    return scores, tp


def _match_image(classes: np.ndarray, scores: np.ndarray, masks: List[RLE], boxes: np.ndarray, gt: PreparedImage,
                 group_of_weight: float, iou_threshold: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(classes, scores, TP weights) of every class of one image, matched at once.

    The four steps of the module docstring on (detections x all GT of the image) matrices in which the
    pairs of different classes (or of a GT kind a step does not use) hold -1, so that a row's maximum
    and its first arg-maximum are those of its class's columns, in GT order; a GT belongs to one class,
    so the greedy "first detection takes a free GT" of different classes cannot interfere. Detections
    are sorted once by descending score (ties: the later first), which is also each class's own order.
    All mask pairs of the image go through one pycocotools call (IoU for non-group-of GT, IoA for
    group-of), and only same-class pairs whose extents meet are used (others are exactly 0). Output
    order: by class, then the class's kept detections in score order, then its absorbing group-of GT
    in GT order (what :func:`match_class` returns for a class).
    """
    order = np.argsort(scores, kind="stable")[::-1]
    cls, sc, bx = classes[order], np.asarray(scores, dtype=np.float64)[order], boxes[order]
    n = cls.shape[0]
    has_mask = np.fromiter((m is not None for m in gt.masks), dtype=bool, count=len(gt.masks))
    group = gt.is_group_of
    same = cls[:, None] == gt.labels[None, :]
    tp = np.zeros(n, dtype=bool)
    removed = np.zeros(n, dtype=bool)  # absorbed by group-of, or ignored by a mask-less box
    rows_all = np.arange(n)
    top = np.zeros(len(gt.masks), dtype=np.float64)  # highest absorbed score per group-of GT
    extra = np.zeros(0, dtype=np.int64)  # group-of GT that score a TP of weight group_of_weight

    masked = same & has_mask[None, :]
    if masked.any():
        overlap = np.where(masked, 0.0, -1.0)
        need = masked
        if gt.mask_boxes is not None:  # pairs whose extents do not meet share no pixel: exactly 0
            mb = gt.mask_boxes
            meet = ((np.maximum(bx[:, None, 0], mb[None, :, 0]) < np.minimum(bx[:, None, 2], mb[None, :, 2]))
                    & (np.maximum(bx[:, None, 1], mb[None, :, 1]) < np.minimum(bx[:, None, 3], mb[None, :, 3])))
            need = masked & (meet | np.isnan(bx[:, :1]))  # NaN: extent not computed, pycocotools prefilters
        rows, cols = np.flatnonzero(need.any(axis=1)), np.flatnonzero(need.any(axis=0))
        if rows.size:
            block = rle_iou([masks[order[i]] for i in rows], [gt.masks[j] for j in cols], crowd=group[cols])
            sub = need[np.ix_(rows, cols)]
            r, c = np.nonzero(sub)
            overlap[rows[r], cols[c]] = block[r, c]
        # (1) masked, non-group-of GT: mask IoU; the first detection of a GT whose best it is takes it
        step = masked & ~group[None, :]
        if step.any():
            tp, _ = _greedy_free_match(np.where(step, overlap, -1.0), step.any(axis=1), iou_threshold)
        # (2) masked group-of GT: mask IoA; absorbed detections are ignored, each group-of GT scores once
        step = masked & group[None, :]
        if step.any():
            ioa = np.where(step, overlap, -1.0)
            best = np.argmax(ioa, axis=1)
            absorbed = ~tp & step.any(axis=1) & (ioa[rows_all, best] >= iou_threshold)
            removed |= absorbed
            if group_of_weight > 0 and absorbed.any():
                np.maximum.at(top, best[absorbed], sc[absorbed])
                extra = np.flatnonzero(top > 0)
    boxless = same & ~has_mask[None, :]
    if boxless.any():
        # (3) mask-less non-group-of GT boxes: box IoU; a match with a free box is ignored
        step = boxless & ~group[None, :]
        if step.any():
            iou = np.where(step, _box_iou(bx, gt.boxes), -1.0)
            ignored, _ = _greedy_free_match(iou, ~tp & ~removed & step.any(axis=1), iou_threshold)
            removed |= ignored
        # (4) mask-less group-of GT boxes: box IoA; matches are ignored
        step = boxless & group[None, :]
        if step.any():
            ioa = np.where(step, _box_ioa(bx, gt.boxes), -1.0)
            removed |= ~tp & ~removed & step.any(axis=1) & (ioa.max(axis=1) >= iou_threshold)

    keep = np.flatnonzero(~removed)
    out_c = np.concatenate([cls[keep], gt.labels[extra]])
    out_s = np.concatenate([sc[keep], top[extra]])
    out_t = np.concatenate([tp[keep].astype(np.float64), np.full(extra.size, float(group_of_weight))])
    kind = np.concatenate([np.zeros(keep.size, np.int64), np.ones(extra.size, np.int64)])
    pos = np.concatenate([keep, extra])
    by = np.lexsort((pos, kind, out_c))
    return out_c[by], out_s[by], out_t[by]


def _in_sorted(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """``np.isin(values, sorted_set)`` by binary search: cheaper on the ~100 detections of an image."""
    if not sorted_set.size:
        return np.zeros(values.shape, dtype=bool)
    at = np.minimum(np.searchsorted(sorted_set, values), sorted_set.size - 1)
    return sorted_set[at] == values


@dataclass
class ImageResult:
    classes: np.ndarray  # (K,) int64
    scores: np.ndarray  # (K,) float64
    tp: np.ndarray  # (K,) float64 TP weight (0 = FP)
    skipped: Counter


def _empty_result(skipped: Counter) -> ImageResult:
    return ImageResult(np.zeros(0, np.int64), np.zeros(0, np.float64), np.zeros(0, np.float64), skipped)


def evaluate_image(gt: Optional[PreparedImage], preds: ImagePredictions, class_index: Mapping[str, int],
                   group_of_weight: float = 1.0, iou_threshold: float = 0.5,
                   max_predictions: Optional[int] = 100, image_id: str = "?",
                   ancestors: Optional[Mapping[int, Sequence[int]]] = None) -> ImageResult:
    """Filter one image's predictions as the challenge does and match them class by class.

    ``ancestors`` (class index -> ancestor class indices) expands predictions up the hierarchy: each
    kept prediction is repeated, same score and mask, for every ancestor class (not the official
    protocol; see :func:`evaluate_oid_challenge`). The 100-per-image cut applies before expansion.
    """
    skipped = Counter(preds.skipped)
    n = len(preds)
    if n == 0:
        return _empty_result(skipped)
    if gt is None:
        skipped["predictions_on_images_without_gt"] += n
        return _empty_result(skipped)
    keep = np.arange(n)
    if max_predictions and n > max_predictions:
        keep = np.sort(np.argsort(-preds.scores, kind="stable")[:max_predictions])
        skipped["predictions_over_max_per_image"] += n - max_predictions
    labels = preds.labels if keep.size == n else [preds.labels[i] for i in keep.tolist()]
    classes = np.fromiter(map(class_index.get, labels, repeat(-1)), dtype=np.int64, count=len(labels))
    unknown = classes < 0
    skipped["predictions_of_unknown_classes"] += int(unknown.sum())
    if ancestors:
        copies = [(k, a) for k, c in zip(keep.tolist(), classes.tolist()) for a in ancestors.get(c, ())]
        if copies:
            skipped["predictions_added_by_expansion"] += len(copies)  # (reported with the skips)
            keep = np.concatenate([keep, np.array([k for k, _ in copies], dtype=keep.dtype)])
            classes = np.concatenate([classes, np.array([a for _, a in copies], dtype=np.int64)])
            unknown = classes < 0
    evaluatable = _in_sorted(classes, gt.evaluatable) & ~unknown
    skipped["predictions_not_evaluatable_in_image"] += int((~evaluatable & ~unknown).sum())
    keep, classes = keep[evaluatable], classes[evaluatable]
    masks = [preds.masks[i] for i in keep]
    # TF drops "invalid boxes" (empty masks). A detection's extent (its box) is only compared with the
    # mask-less GT boxes of its class: the other detections get their validity from the string, and their
    # mask IoUs in one pycocotools call that decodes each of them once (their extents stay NaN)
    boxless = np.unique(gt.labels[np.fromiter((m is None for m in gt.masks), dtype=bool, count=len(gt.masks))])
    with_box = _in_sorted(classes, boxless)
    boxes = np.full((len(masks), 4), np.nan)
    valid = np.zeros(len(masks), dtype=bool)
    rows = np.flatnonzero(with_box)
    if rows.size:
        boxes[rows] = rle_extents_normalized([masks[i] for i in rows])
        valid[rows] = (boxes[rows, 0] < boxes[rows, 2]) & (boxes[rows, 1] < boxes[rows, 3])
    rows = np.flatnonzero(~with_box)
    if rows.size:
        valid[rows] = rle_has_extent([masks[i] for i in rows])
    skipped["predictions_with_empty_masks"] += int((~valid).sum())
    if gt.size is not None and valid.any():
        sizes = np.array([m["size"] for m in masks], dtype=np.int64).reshape(-1, 2)
        wrong = np.flatnonzero(valid & ((sizes[:, 0] != gt.size[0]) | (sizes[:, 1] != gt.size[1])))
        if wrong.size:
            raise ValueError(
                f"image {image_id}: a predicted mask is {tuple(sizes[wrong[0]].tolist())} (height, width) but "
                f"the GT masks are {gt.size}; predictions must be encoded at the original image size")
    if not valid.any():
        return _empty_result(skipped)
    d = np.flatnonzero(valid)
    out_c, out_s, out_t = _match_image(classes[d], preds.scores[keep[d]], [masks[i] for i in d], boxes[d], gt,
                                       group_of_weight, iou_threshold)
    return ImageResult(out_c, out_s, out_t, skipped)


# ----------------------------------------------------------------------------------------------------
# AP


def average_precision(scores: np.ndarray, tp: np.ndarray, num_gt: float) -> float:
    """VOC all-point AP of weighted TPs (entries with weight <= 0 are FPs); NaN if ``num_gt`` is 0."""
    if num_gt <= 0:
        return float("nan")
    if len(scores) == 0:
        return 0.0
    order = np.argsort(np.asarray(scores), kind="stable")[::-1]
    tpw = np.asarray(tp, dtype=np.float64)[order]
    ctp = np.cumsum(tpw)
    cfp = np.cumsum((tpw <= 0).astype(np.float64))
    precision = ctp / (ctp + cfp)
    recall = ctp / num_gt
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.concatenate([[0.0], precision, [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.flatnonzero(recall[1:] != recall[:-1]) + 1
    return float(np.sum((recall[idx] - recall[idx - 1]) * precision[idx]))


# ----------------------------------------------------------------------------------------------------
# driver

_STATE: dict = {}


def _work(image_id: str) -> ImageResult:
    st = _STATE
    return evaluate_image(st["gt"].images.get(image_id), st["predictions"][image_id], st["class_index"],
                          st["group_of_weight"], st["iou_threshold"], st["max_predictions"], image_id,
                          st.get("ancestors"))


def _results_in_order(image_ids: List[str], num_workers: int, progress: bool) -> Iterable[ImageResult]:
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        tqdm = None
    wrap = (lambda it: tqdm(it, total=len(image_ids), desc="OID challenge eval", unit="img",
                            mininterval=2.0)) if (progress and tqdm) else (lambda it: it)
    if num_workers > 1 and len(image_ids) > 1 and "fork" in mp.get_all_start_methods():
        ctx = mp.get_context("fork")  # workers inherit GT and predictions without pickling them
        chunk = max(1, min(64, len(image_ids) // (num_workers * 8) or 1))
        with ctx.Pool(num_workers) as pool:
            yield from wrap(pool.imap(_work, image_ids, chunksize=chunk))
    else:
        if num_workers > 1 and "fork" not in mp.get_all_start_methods():
            logger.info("OID challenge eval: no 'fork' start method here; evaluating in one process")
        yield from wrap(map(_work, image_ids))


def _mean(values: Iterable[float]) -> Optional[float]:
    vals = [v for v in values if v is not None and not np.isnan(v)]
    return float(np.mean(vals)) if vals else None


def _score(gt: PreparedGroundTruth, predictions: Mapping[str, ImagePredictions], num_gt: np.ndarray,
           state: dict, num_workers: int, progress: bool) -> Tuple[Dict[str, float], Dict[str, float], Counter, int]:
    """(AP by MID, counted GT by MID, skip counts, detections evaluated) of one matching pass."""
    image_ids = sorted(predictions)
    _STATE.clear()
    _STATE.update(state, gt=gt, predictions=predictions, class_index=gt.class_index)
    skipped: Counter = Counter()
    cls_parts, score_parts, tp_parts = [], [], []
    try:
        for res in _results_in_order(image_ids, num_workers, progress):
            skipped.update(res.skipped)
            if res.classes.size:
                cls_parts.append(res.classes)
                score_parts.append(res.scores)
                tp_parts.append(res.tp)
    finally:
        _STATE.clear()
    classes = np.concatenate(cls_parts) if cls_parts else np.zeros(0, np.int64)
    scores = np.concatenate(score_parts) if score_parts else np.zeros(0)
    tps = np.concatenate(tp_parts) if tp_parts else np.zeros(0)
    by_class = np.argsort(classes, kind="stable")  # keeps the ImageID order inside each class
    classes, scores, tps = classes[by_class], scores[by_class], tps[by_class]
    bounds = np.searchsorted(classes, np.arange(len(gt.class_mids) + 1))

    per_class, counted = {}, {}
    for c, mid in enumerate(gt.class_mids):
        if num_gt[c] <= 0:
            continue
        lo, hi = bounds[c], bounds[c + 1]
        per_class[mid] = average_precision(scores[lo:hi], tps[lo:hi], num_gt[c])
        counted[mid] = float(num_gt[c])
    return per_class, counted, skipped, int(classes.size)


def _split_summary(per_class: Mapping[str, float], base: Optional[set], novel: Optional[set],
                   hierarchy: Optional[ClassHierarchy]) -> dict:
    """AP50-base / AP50-novel and, with a hierarchy, AP50-novel of the novel classes that have a base
    ancestor (e.g. Owl under Bird) and of those that have none (e.g. Dolphin)."""
    if base is None:
        return {}
    novel = novel if novel is not None else set(per_class) - base
    out = {
        "AP50_base": _mean(ap for m, ap in per_class.items() if m in base),
        "AP50_novel": _mean(ap for m, ap in per_class.items() if m in novel),
        "num_base_evaluated": sum(1 for m in per_class if m in base),
        "num_novel_evaluated": sum(1 for m in per_class if m in novel),
    }
    if hierarchy is not None:
        near = sorted(m for m in per_class if m in novel and hierarchy.ancestors.get(m, set()) & base)
        far = sorted(m for m in per_class if m in novel and m not in set(near))
        out.update({
            "AP50_novel_with_base_ancestor": _mean(per_class[m] for m in near),
            "AP50_novel_without_base_ancestor": _mean(per_class[m] for m in far),
            "novel_with_base_ancestor": near,
            "novel_without_base_ancestor": far,
        })
    return out


def evaluate_oid_challenge(gt: Union[ChallengeGroundTruth, PreparedGroundTruth],
                           predictions: Mapping[str, ImagePredictions],
                           group_of_weight: float = 1.0,
                           hierarchy: Union[None, str, Mapping, ClassHierarchy] = None,
                           base_classes: Optional[Iterable[str]] = None,
                           novel_classes: Optional[Iterable[str]] = None,
                           class_mids: Optional[Sequence[str]] = None,
                           iou_threshold: float = 0.5,
                           max_predictions_per_image: Optional[int] = 100,
                           num_workers: int = 2,
                           progress: bool = True,
                           expand_predictions: bool = False) -> dict:
    """The challenge metric on in-memory ground truth and predictions.

    ``gt``: GT rows (then ``hierarchy`` and ``class_mids`` apply) or an already prepared GT.
    ``predictions``: ImageID -> :class:`ImagePredictions` (MIDs, scores, full-size RLE masks), e.g. a
    dict, or a :class:`ChallengePredictionsCSV`. ``base_classes`` / ``novel_classes``: MIDs; novel
    defaults to every evaluated class that is not base. ``max_predictions_per_image``: the challenge
    keeps at most 100 per image (highest scores; ``None`` = keep all, like the TF script).

    ``hierarchy``: GT rows are expanded up/down it (the official protocol). With ``base_classes`` it
    also splits AP50-novel into novel classes with and without a base ancestor. With
    ``expand_predictions`` the metric is computed a second time with every prediction also copied to
    each ancestor class (a model whose vocabulary holds both "Bird" and "Owl" splits its probability
    between them, so a leaf prediction never counts for the parent in the official number); those
    results go under ``expanded_predictions``, beside the official ones, never instead of them.

    Returns a dict with ``mAP``, ``per_class`` (AP by MID, classes with counted GT only), ``num_gt``,
    ``AP50_base`` / ``AP50_novel`` when ``base_classes`` is given (plus the with/without base ancestor
    split when a hierarchy is given), ``skipped`` counts, and ``expanded_predictions`` if asked. APs
    are fractions in [0, 1], as the TF tool reports them; ``None`` where undefined.
    """
    h = load_hierarchy(hierarchy) if hierarchy is not None else None
    if isinstance(gt, ChallengeGroundTruth):
        gt = prepare_ground_truth(gt, class_mids=class_mids, hierarchy=h)
    elif hierarchy is not None:
        raise ValueError("hierarchy expansion applies to GT rows; pass a ChallengeGroundTruth, not a prepared GT")
    if group_of_weight < 0:
        raise ValueError(f"group_of_weight must be >= 0, got {group_of_weight}")
    if expand_predictions and h is None:
        raise ValueError("expand_predictions needs the class hierarchy (hierarchy=...)")
    num_gt = gt.counted_gt(group_of_weight)
    state = dict(group_of_weight=float(group_of_weight), iou_threshold=float(iou_threshold),
                 max_predictions=max_predictions_per_image)
    per_class, counted, pass_skips, n_eval = _score(gt, predictions, num_gt, state, num_workers, progress)
    skipped = Counter(gt.skipped)
    skipped.update(getattr(predictions, "pending_skips", Counter()))
    skipped.update(pass_skips)
    base = set(base_classes) if base_classes is not None else None
    novel = set(novel_classes) if novel_classes is not None else None

    results = {
        "mAP": _mean(per_class.values()),
        "per_class": per_class,
        "num_gt": counted,
        "num_classes_evaluated": len(per_class),
        "num_gt_images": len(gt.images),
        "num_prediction_images": len(predictions),
        "num_predictions_evaluated": n_eval,
        "group_of_weight": float(group_of_weight),
        "iou_threshold": float(iou_threshold),
        "max_predictions_per_image": max_predictions_per_image,
        "skipped": {k: int(v) for k, v in sorted(skipped.items()) if v},
    }
    results.update(_split_summary(per_class, base, novel, h))
    if expand_predictions:
        index = gt.class_index
        ancestors = {index[m]: sorted(index[a] for a in h.ancestors.get(m, ()) if a in index)
                     for m in gt.class_mids}
        state["ancestors"] = {c: a for c, a in ancestors.items() if a}
        exp_class, _, exp_skips, exp_eval = _score(gt, predictions, num_gt, state, num_workers, progress)
        results["expanded_predictions"] = {
            "mAP": _mean(exp_class.values()), "per_class": exp_class, "num_predictions_evaluated": exp_eval,
            "predictions_added_by_expansion": int(exp_skips.get("predictions_added_by_expansion", 0)),
            **_split_summary(exp_class, base, novel, h)}
    return results


def evaluate_oid_challenge_files(boxes: Optional[str], masks: Optional[str], labels: Optional[str],
                                 predictions: str, hierarchy: Optional[str] = None,
                                 class_descriptions: Optional[str] = None,
                                 base_classes: Union[None, str, Iterable[str]] = None,
                                 novel_classes: Union[None, str, Iterable[str]] = None,
                                 group_of_weight: float = 1.0, strict: bool = False, **kwargs) -> dict:
    """:func:`evaluate_oid_challenge` on the challenge files (paths), as ``tools/eval_oid_challenge.py``.

    ``base_classes`` / ``novel_classes`` may be a file of MIDs (one a line) or an iterable of MIDs.
    With ``class_descriptions`` the class list is that file's MIDs and the result also carries
    ``class_names`` (MID -> display name).
    """
    gt = read_ground_truth_csvs(boxes, masks, labels, strict=strict)
    names = read_class_descriptions(class_descriptions) if class_descriptions else None
    if isinstance(base_classes, str):
        base_classes = read_class_list(base_classes)
    if isinstance(novel_classes, str):
        novel_classes = read_class_list(novel_classes)
    preds = ChallengePredictionsCSV(predictions, strict=strict)
    if preds.num_rows == 0:
        raise ValueError(f"{predictions}: no prediction rows (header only); nothing to evaluate")
    results = evaluate_oid_challenge(gt, preds, group_of_weight=group_of_weight, hierarchy=hierarchy,
                                     base_classes=base_classes, novel_classes=novel_classes,
                                     class_mids=list(names) if names else None, **kwargs)
    if names:
        results["class_names"] = {m: names.get(m, m) for m in results["per_class"]}
    return results
