#!/usr/bin/env python
"""Speed of the OID challenge mask metric on a synthetic set shaped like OID v6 val.

OID v6 segmentation val (the paper's numbers): about 12K images, 23K masks, 300 classes; a model
submits at most 100 predictions per image. This script generates such a set (polygon masks at
1024-pixel image sizes, group-of masks, mask-less boxes, positive and negative image labels,
predictions near GT and elsewhere), then times

* ``fast``: :func:`alpseg.evaluation.evaluate_oid_challenge` on all images with ``--workers``
  processes (in memory, as the detectron2 evaluator calls it), plus optionally ``--csv`` the
  whole-file path (GT and prediction CSVs parsed and decoded, as the command-line tool does);
* ``loop``: the straightforward implementation of ``alpseg/testing/oid_reference.py`` (dense
  masks per pair, like the TF code) on the first ``--loop-images`` images, and ``fast`` on the same
  images, whose AP must agree.

    python bench/bench_oid_eval.py                       # full size (12000 images)
    python bench/bench_oid_eval.py --images 500 --loop-images 50   # quick

Prints a JSON report (also written to ``--output`` if given). Pin the cores with ``taskset -c 0,1``.
"""
import argparse
import json
import os
import tempfile
import time

import numpy as np
import pycocotools.mask as mask_utils

from alpseg.evaluation.oid.challenge import evaluate_oid_challenge, evaluate_oid_challenge_files
from alpseg.evaluation.oid.io import (
    BoxRow,
    ChallengeGroundTruth,
    ImagePredictions,
    LabelRow,
    MaskRow,
    write_ground_truth_csvs,
    write_predictions_csv,
)
from alpseg.evaluation.oid.masks import rle_to_challenge_string
from alpseg.utils.io import atomic_write_json

SIZES = [(1024, 768), (1024, 683), (768, 1024), (1024, 1024), (683, 1024)]  # (width, height)


def _blob(rng, w, h, cx=None, cy=None, scale=None):
    cx = rng.uniform(0.1, 0.9) * w if cx is None else cx
    cy = rng.uniform(0.1, 0.9) * h if cy is None else cy
    r = (scale if scale is not None else rng.uniform(0.04, 0.3)) * min(w, h)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 14))
    radii = r * rng.uniform(0.6, 1.0, 14)
    xs = np.clip(cx + radii * np.cos(angles) * rng.uniform(0.7, 1.4), 0, w - 1)
    ys = np.clip(cy + radii * np.sin(angles), 0, h - 1)
    poly = np.stack([xs, ys], 1).reshape(-1).tolist()
    rle = mask_utils.merge(mask_utils.frPyObjects([poly], h, w))
    return {"size": [h, w], "counts": rle["counts"]}, (cx, cy, r)


def _norm_box(rle):
    x, y, bw, bh = mask_utils.toBbox([rle])[0]
    h, w = rle["size"]
    return x / w, (x + bw) / w, y / h, (y + bh) / h


def make_dataset(n_images, masks_per_image, preds_per_image, n_classes, seed, pool_size=400):
    """GT rows and in-memory predictions. Predictions far from GT are drawn from a pool of random
    shapes per image size, and those near a GT object from three jittered copies of it (generating
    1.2M distinct polygons would take longer than evaluating them)."""
    rng = np.random.default_rng(seed)
    classes = [f"/m/c{k:03d}" for k in range(n_classes)]
    pools = {(w, h): [_blob(rng, w, h)[0] for _ in range(pool_size)] for w, h in SIZES}
    gt = ChallengeGroundTruth()
    preds = {}
    for i in range(n_images):
        image = f"{i:016x}"
        w, h = SIZES[rng.integers(len(SIZES))]
        pool = pools[(w, h)]
        objs = []
        for _ in range(rng.poisson(masks_per_image)):
            label = classes[rng.integers(n_classes)]
            rle, (cx, cy, r) = _blob(rng, w, h)
            if mask_utils.area([rle])[0] == 0:
                continue
            group = int(rng.random() < 0.08)
            xmin, xmax, ymin, ymax = _norm_box(rle)
            gt.boxes.append(BoxRow(image, label, xmin, xmax, ymin, ymax, group))
            gt.masks.append(MaskRow(image, label, w, h, xmin, ymin, xmax, ymax, group, rle_to_challenge_string(rle)))
            near = [_blob(rng, w, h, cx + rng.normal(0, 0.1 * r), cy + rng.normal(0, 0.1 * r),
                          r / min(w, h) * rng.uniform(0.8, 1.2))[0] for _ in range(3)]
            objs.append((label, near))
        for _ in range(rng.poisson(1.0)):  # boxes without masks
            label = classes[rng.integers(n_classes)]
            x0, y0 = rng.uniform(0, 0.7, 2)
            gt.boxes.append(BoxRow(image, label, x0, x0 + rng.uniform(0.05, 0.3), y0, y0 + rng.uniform(0.05, 0.3),
                                   int(rng.random() < 0.1)))
            objs.append((label, None))
        present = sorted({o[0] for o in objs})
        gt.labels += [LabelRow(image, m, 1.0) for m in present]
        gt.labels += [LabelRow(image, classes[k], 0.0) for k in rng.integers(n_classes, size=3)]
        evaluatable = present + [classes[k] for k in rng.integers(n_classes, size=3)]
        labels, masks = [], []
        for _ in range(preds_per_image):
            if objs and rng.random() < 0.3:
                label, near = objs[rng.integers(len(objs))]
                rle = near[rng.integers(3)] if near is not None else pool[rng.integers(pool_size)]
            else:
                label = evaluatable[rng.integers(len(evaluatable))] if rng.random() < 0.5 else classes[
                    rng.integers(n_classes)]
                rle = pool[rng.integers(pool_size)]
            labels.append(label)
            masks.append(rle)
        preds[image] = ImagePredictions(labels, rng.random(preds_per_image), masks)
    return gt, preds


def _subset(gt, preds, image_ids):
    keep = set(image_ids)
    sub = ChallengeGroundTruth([r for r in gt.boxes if r.image_id in keep], [r for r in gt.masks if r.image_id in keep],
                               [r for r in gt.labels if r.image_id in keep])
    return sub, {k: preds[k] for k in image_ids}


def run_loop(gt, preds):
    """The straightforward implementation on plain dicts (masks decoded to dense inside it)."""
    from alpseg.evaluation.oid.masks import decode_challenge_mask

    from alpseg.testing import oid_reference as ref

    boxes = [{"image": r.image_id, "label": r.label, "xmin": r.xmin, "xmax": r.xmax, "ymin": r.ymin, "ymax": r.ymax,
              "group": r.is_group_of} for r in gt.boxes]
    masks = [{"image": r.image_id, "label": r.label, "xmin": r.xmin, "xmax": r.xmax, "ymin": r.ymin, "ymax": r.ymax,
              "group": r.is_group_of, "mask": decode_challenge_mask(r.mask, r.width, r.height)} for r in gt.masks]
    labels = [{"image": r.image_id, "label": r.label, "conf": r.confidence} for r in gt.labels]
    plist = [{"image": k, "label": lab, "score": s, "mask": m} for k, p in preds.items()
             for lab, s, m in zip(p.labels, p.scores, p.masks)]
    return ref.evaluate(boxes, masks, labels, plist)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=12000)
    ap.add_argument("--masks", type=int, default=23000, help="GT masks in total (about)")
    ap.add_argument("--preds", type=int, default=100, help="predictions per image")
    ap.add_argument("--classes", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--loop-images", type=int, default=100, help="images timed with the straightforward loop")
    ap.add_argument("--csv", action="store_true", help="also time the CSV-file path on all images")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", help="write the JSON report here")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    gt, preds = make_dataset(args.images, args.masks / args.images, args.preds, args.classes, args.seed)
    report = {"images": args.images, "gt_masks": len(gt.masks), "gt_boxes": len(gt.boxes),
              "predictions": sum(len(p) for p in preds.values()), "classes": args.classes, "workers": args.workers,
              "cpu_count": os.cpu_count(), "load_average_at_start": round(os.getloadavg()[0], 2),
              "generate_s": round(time.perf_counter() - t0, 1)}
    print(json.dumps(report), flush=True)

    t0 = time.perf_counter()
    fast = evaluate_oid_challenge(gt, preds, num_workers=args.workers, progress=False)
    dt = time.perf_counter() - t0
    report.update(fast_s=round(dt, 2), fast_images_per_s=round(args.images / dt, 1), fast_mAP=fast["mAP"])
    print(json.dumps({k: report[k] for k in ("fast_s", "fast_images_per_s")}), flush=True)

    if args.csv:
        with tempfile.TemporaryDirectory() as tmp:
            p = {k: os.path.join(tmp, f"{k}.csv") for k in ("boxes", "masks", "labels", "preds")}
            write_ground_truth_csvs(gt, p["boxes"], p["masks"], p["labels"])
            write_predictions_csv(p["preds"], preds)
            report["predictions_csv_mb"] = round(os.path.getsize(p["preds"]) / 2 ** 20, 1)
            t0 = time.perf_counter()
            via_csv = evaluate_oid_challenge_files(p["boxes"], p["masks"], p["labels"], p["preds"],
                                                   num_workers=args.workers, progress=False)
            dt = time.perf_counter() - t0
        assert abs(via_csv["mAP"] - fast["mAP"]) < 1e-12, (via_csv["mAP"], fast["mAP"])
        report.update(csv_s=round(dt, 2), csv_images_per_s=round(args.images / dt, 1))
        print(json.dumps({k: report[k] for k in ("csv_s", "csv_images_per_s")}), flush=True)

    if args.loop_images:
        ids = sorted(preds)[: args.loop_images]
        sub_gt, sub_preds = _subset(gt, preds, ids)
        t0 = time.perf_counter()
        loop = run_loop(sub_gt, sub_preds)
        loop_dt = time.perf_counter() - t0
        t0 = time.perf_counter()
        fast_sub = evaluate_oid_challenge(sub_gt, sub_preds, num_workers=1, progress=False)
        fast1_dt = time.perf_counter() - t0
        worst = max([abs(fast_sub["per_class"][k] - v) for k, v in loop["per_class"].items()] or [0.0])
        assert set(loop["per_class"]) == set(fast_sub["per_class"]) and worst < 1e-9, worst
        report.update(loop_images=len(ids), loop_s=round(loop_dt, 2),
                      loop_images_per_s=round(len(ids) / loop_dt, 2),
                      fast_1worker_same_images_per_s=round(len(ids) / fast1_dt, 1),
                      speedup_1worker_same_images=round(loop_dt / fast1_dt, 1),
                      speedup_vs_loop=round(report["fast_images_per_s"] / (len(ids) / loop_dt), 1),
                      loop_agrees=True)
    report["load_average_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(report, indent=2))
    if args.output:
        atomic_write_json(args.output, report, indent=2)
    return report


if __name__ == "__main__":
    main()
