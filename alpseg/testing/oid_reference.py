"""An independent, deliberately plain implementation of the Open Images challenge mask metric.

Written from the algorithm of docs/evaluation.md only (dense numpy masks, Python loops, no shared code
with ``alpseg.evaluation``), to check the fast implementation against it. ``bench/bench_oid_eval.py``
also uses it as "the straightforward loop" (it is how the TF code computes: dense masks per pair).

Inputs are plain dicts:
* gt_boxes: {"image", "label", "xmin", "xmax", "ymin", "ymax", "group"}
* gt_masks: the same plus "mask" (dense (H, W) array, a pycocotools RLE dict, or None)
* gt_labels: {"image", "label", "conf"}
* preds: {"image", "label", "score", "mask"} (dense array or RLE dict)
"""
from __future__ import annotations

import math

import numpy as np
import pycocotools.mask as mask_utils


def _dense(m):
    if m is None:
        return None
    if isinstance(m, dict):
        return mask_utils.decode(m).astype(bool)
    return np.asarray(m).astype(bool)


def _tree_relations(tree):
    parents = {}  # mid -> set of all ancestors

    def walk(node, ancestors):
        for child in node.get("Subcategory", []):
            mid = child["LabelName"]
            parents.setdefault(mid, set())
            parents[mid] |= set(ancestors)
            walk(child, ancestors + [mid])

    walk(tree, [])
    children = {m: set() for m in parents}
    for m, ps in parents.items():
        for p in ps:
            children[p].add(m)
    return parents, children


def expand(gt_boxes, gt_masks, gt_labels, tree):
    parents, children = _tree_relations(tree)
    boxes, masks, labels = [], [], []
    for rows, out in ((gt_boxes, boxes), (gt_masks, masks)):
        for r in rows:
            out.append(r)
            for p in sorted(parents.get(r["label"], ())):
                out.append(dict(r, label=p))
    for r in gt_labels:
        labels.append(r)
        rel = parents if int(r["conf"]) == 1 else children
        for p in sorted(rel.get(r["label"], ())):
            labels.append(dict(r, label=p))
    return boxes, masks, labels


def _key(r):
    return (r["label"], r["image"], r["xmin"], r["xmax"], r["ymin"], r["ymax"], int(r["group"]))


def join(gt_boxes, gt_masks):
    """Full outer join, sorted by key; each result: (key, dense mask or None)."""
    out = []
    keys = sorted(set(_key(r) for r in gt_boxes) | set(_key(r) for r in gt_masks))
    for k in keys:
        left = [r for r in gt_boxes if _key(r) == k]
        right = [r for r in gt_masks if _key(r) == k]
        if left and right:
            for _ in left:
                for m in right:
                    out.append((k, m["mask"]))
        elif left:
            for _ in left:
                out.append((k, None))
        else:
            for m in right:
                out.append((k, m["mask"]))
    return out


def _mask_iou(a, b):
    inter = np.logical_and(a, b).sum()
    union = a.sum() + b.sum() - inter
    return inter / union


def _mask_ioa(det, gt):
    return np.logical_and(det, gt).sum() / det.sum()


def _bi(a, b):
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    return ih * iw


def _barea(a):
    return (a[3] - a[1]) * (a[2] - a[0])


def _box_iou(a, b):
    i = _bi(a, b)
    return i / (_barea(a) + _barea(b) - i)


def _box_ioa(det, gt):
    return _bi(det, gt) / _barea(det)


def _extent(mask):
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    return (xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h)


def _argmax(values):
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


def evaluate(gt_boxes, gt_masks, gt_labels, preds, classes=None, group_of_weight=1.0, hierarchy=None,
             max_per_image=100, thr=0.5):
    """Returns {"per_class": {mid: AP}, "mAP": float or None}."""
    if hierarchy is not None:
        gt_boxes, gt_masks, gt_labels = expand(gt_boxes, gt_masks, gt_labels, hierarchy)
    joined = join(gt_boxes, gt_masks)
    if classes is None:
        classes = sorted({k[0] for k, _ in joined} | {r["label"] for r in gt_labels})
    classes = set(classes)

    gt_images = {}
    for k, m in joined:
        if k[0] not in classes:
            continue
        d = _dense(m)
        if d is not None and d.sum() == 0:
            d = None
        gt_images.setdefault(k[1], {"inst": [], "ok": set()})
        gt_images[k[1]]["inst"].append({"label": k[0], "box": (k[2], k[4], k[3], k[5]), "group": bool(k[6]), "mask": d})
        gt_images[k[1]]["ok"].add(k[0])
    for r in gt_labels:
        gt_images.setdefault(r["image"], {"inst": [], "ok": set()})
        if r["label"] in classes:
            gt_images[r["image"]]["ok"].add(r["label"])

    num_gt = {}
    for img in gt_images.values():
        for g in img["inst"]:
            if g["mask"] is not None:
                num_gt[g["label"]] = num_gt.get(g["label"], 0.0) + (group_of_weight if g["group"] else 1.0)

    by_image = {}
    for i, p in enumerate(preds):
        by_image.setdefault(p["image"], []).append(p)

    entries = {}  # class -> list of (score, weight) in image order
    for image in sorted(by_image):
        plist = by_image[image]
        if max_per_image and len(plist) > max_per_image:
            ranked = sorted(range(len(plist)), key=lambda i: (-plist[i]["score"], i))[:max_per_image]
            plist = [plist[i] for i in sorted(ranked)]
        if image not in gt_images:
            continue
        img = gt_images[image]
        dets = []
        for p in plist:
            if p["label"] not in img["ok"]:
                continue
            d = _dense(p["mask"])
            if d.sum() == 0:
                continue
            dets.append((p["label"], p["score"], d))
        for cls in sorted({d[0] for d in dets}):
            mine = [d for d in dets if d[0] == cls]
            idx = sorted(range(len(mine)), key=lambda i: (-mine[i][1], -i))  # ties: later first
            mine = [mine[i] for i in idx]
            gts = [g for g in img["inst"] if g["label"] == cls]
            status = ["fp"] * len(mine)
            out = []
            if gts:
                m_ng = [g for g in gts if g["mask"] is not None and not g["group"]]
                m_g = [g for g in gts if g["mask"] is not None and g["group"]]
                b_ng = [g for g in gts if g["mask"] is None and not g["group"]]
                b_g = [g for g in gts if g["mask"] is None and g["group"]]
                taken = [False] * len(m_ng)
                for i, (_, s, d) in enumerate(mine):
                    if not m_ng:
                        break
                    ious = [_mask_iou(d, g["mask"]) for g in m_ng]
                    j = _argmax(ious)
                    if ious[j] >= thr and not taken[j]:
                        taken[j] = True
                        status[i] = "tp"
                best_absorbed = [None] * len(m_g)
                for i, (_, s, d) in enumerate(mine):
                    if status[i] != "fp" or not m_g:
                        continue
                    ioas = [_mask_ioa(d, g["mask"]) for g in m_g]
                    j = _argmax(ioas)
                    if ioas[j] >= thr:
                        status[i] = "absorbed"
                        best_absorbed[j] = s if best_absorbed[j] is None else max(best_absorbed[j], s)
                taken_b = [False] * len(b_ng)
                for i, (_, s, d) in enumerate(mine):
                    if status[i] != "fp" or not b_ng:
                        continue
                    ious = [_box_iou(_extent(d), g["box"]) for g in b_ng]
                    j = _argmax(ious)
                    if ious[j] >= thr and not taken_b[j]:
                        taken_b[j] = True
                        status[i] = "ignored"
                for i, (_, s, d) in enumerate(mine):
                    if status[i] != "fp" or not b_g:
                        continue
                    if max(_box_ioa(_extent(d), g["box"]) for g in b_g) >= thr:
                        status[i] = "ignored"
                for i, (_, s, d) in enumerate(mine):
                    if status[i] in ("tp", "fp"):
                        out.append((s, 1.0 if status[i] == "tp" else 0.0))
                if group_of_weight > 0:
                    for s in best_absorbed:
                        if s is not None and s > 0:
                            out.append((s, group_of_weight))
            else:
                out = [(s, 0.0) for _, s, _ in mine]
            entries.setdefault(cls, []).extend(out)

    per_class = {}
    for cls, n in num_gt.items():
        if n <= 0:
            continue
        e = entries.get(cls, [])
        if not e:
            per_class[cls] = 0.0
            continue
        order = sorted(range(len(e)), key=lambda i: (-e[i][0], -i))
        tp = fp = 0.0
        prec, rec = [], []
        for i in order:
            w = e[i][1]
            if w > 0:
                tp += w
            else:
                fp += 1
            prec.append(tp / (tp + fp))
            rec.append(tp / n)
        # all-point interpolation: sum over recall steps of the max precision at or beyond them
        ap, prev_r = 0.0, 0.0
        for k in range(len(rec)):
            if rec[k] != prev_r:
                ap += (rec[k] - prev_r) * max(prec[k:])
                prev_r = rec[k]
        per_class[cls] = ap
    vals = list(per_class.values())
    return {"per_class": per_class, "mAP": (sum(vals) / len(vals)) if vals else None}


def close(a, b, tol=1e-9):
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)
