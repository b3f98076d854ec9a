"""The fast OID metric equals an independent straightforward implementation on random cases."""
import os

import numpy as np
import pytest

from alpseg.evaluation.oid.challenge import evaluate_oid_challenge, evaluate_oid_challenge_files
from alpseg.evaluation.oid.io import write_ground_truth_csvs, write_predictions_csv
from alpseg.testing import oid_reference

from oid_cases import box_of, to_challenge_gt, to_predictions

FLAT = ["/m/a", "/m/b", "/m/c", "/m/d"]
HIERARCHY = {"LabelName": "/m/root", "Subcategory": [
    {"LabelName": "/m/animal", "Subcategory": [
        {"LabelName": "/m/cat"}, {"LabelName": "/m/dog", "Subcategory": [{"LabelName": "/m/puppy"}]}]},
    {"LabelName": "/m/pet", "Subcategory": [{"LabelName": "/m/dog"}]},  # dog has two parents
    {"LabelName": "/m/car"},
]}
TREE_CLASSES = ["/m/animal", "/m/cat", "/m/dog", "/m/puppy", "/m/pet", "/m/car"]


def _blob(rng, h, w):
    m = np.zeros((h, w), np.uint8)
    for _ in range(rng.integers(1, 3)):
        x0, y0 = rng.integers(0, w - 1), rng.integers(0, h - 1)
        x1, y1 = rng.integers(x0 + 1, w + 1), rng.integers(y0 + 1, h + 1)
        m[y0:y1, x0:x1] = 1
    if rng.random() < 0.3:
        m &= (rng.random((h, w)) < 0.8).astype(np.uint8)
    return m


def _shifted(rng, m):
    dy, dx = rng.integers(-1, 2, size=2)
    out = np.roll(np.roll(m, dy, axis=0), dx, axis=1)
    if rng.random() < 0.15:
        out = out | _blob(rng, *m.shape)
    return out


def random_case(seed):
    rng = np.random.default_rng(seed)
    tree = rng.random() < 0.3
    classes = TREE_CLASSES if tree else FLAT
    gt_boxes, gt_masks, gt_labels, preds, gt_pool = [], [], [], [], {}
    n_images = int(rng.integers(1, 5))
    for k in range(n_images):
        image = f"img{k:02d}"
        h, w = int(rng.integers(6, 13)), int(rng.integers(6, 13))
        objs = []
        for _ in range(int(rng.integers(0, 6))):
            label = classes[rng.integers(len(classes))]
            mask = _blob(rng, h, w) if rng.random() > 0.05 else np.zeros((h, w), np.uint8)
            group = int(rng.random() < 0.25)
            if mask.any():
                xmin, xmax, ymin, ymax = box_of(mask)
            else:
                xmin, xmax, ymin, ymax = 0.1, 0.5, 0.2, 0.6
            row = {"image": image, "label": label, "xmin": xmin, "xmax": xmax, "ymin": ymin, "ymax": ymax,
                   "group": group}
            mode = rng.random()
            copies = 2 if rng.random() < 0.05 else 1  # duplicate rows: the join's cartesian product
            for _ in range(copies):
                if mode < 0.65:
                    gt_boxes.append(dict(row))
                    gt_masks.append(dict(row, mask=mask))
                elif mode < 0.85:
                    b = dict(row)
                    if rng.random() < 0.5:  # a box with no mask anywhere near
                        x0, y0 = rng.random(2) * 0.6
                        b.update(xmin=x0, xmax=x0 + 0.2 + rng.random() * 0.3, ymin=y0, ymax=y0 + 0.4)
                    gt_boxes.append(b)
                else:
                    gt_masks.append(dict(row, mask=mask))
            objs.append((label, mask))
        for label in classes:
            if rng.random() < 0.3:
                gt_labels.append({"image": image, "label": label, "conf": int(rng.random() < 0.6)})
        gt_pool[image] = (h, w, objs)
    # predictions, also on an image without any GT row
    images = list(gt_pool) + ["zzz-no-gt"]
    for image in images:
        h, w, objs = gt_pool.get(image, (8, 8, []))
        for _ in range(int(rng.integers(0, 12))):
            r = rng.random()
            if objs and r < 0.6:
                label, m = objs[rng.integers(len(objs))]
                mask = _shifted(rng, m) if m.any() else _blob(rng, h, w)
                if rng.random() < 0.2:
                    label = classes[rng.integers(len(classes))]
            else:
                label = classes[rng.integers(len(classes))] if rng.random() > 0.05 else "/m/unknown"
                mask = _blob(rng, h, w) if rng.random() > 0.04 else np.zeros((h, w), np.uint8)
            score = float(rng.integers(1, 10)) / 10  # coarse: many ties
            preds.append({"image": image, "label": label, "score": score, "mask": mask})
    params = {
        "group_of_weight": float(rng.choice([0.0, 0.5, 1.0])),
        "max_per_image": [None, 100, 5][int(rng.integers(3))],
        "hierarchy": HIERARCHY if tree and rng.random() < 0.8 else None,
        "classes": classes,
    }
    return gt_boxes, gt_masks, gt_labels, preds, params


def _compare(ours, ref):
    assert set(ours["per_class"]) == set(ref["per_class"])
    for mid, ap in ref["per_class"].items():
        assert ours["per_class"][mid] == pytest.approx(ap, abs=1e-12), mid
    assert oid_reference.close(ours["mAP"], ref["mAP"])


@pytest.mark.parametrize("seed", range(60))
def test_equals_straightforward_implementation(seed):
    gt_boxes, gt_masks, gt_labels, preds, p = random_case(seed)
    ref = oid_reference.evaluate(gt_boxes, gt_masks, gt_labels, preds, classes=p["classes"],
                                 group_of_weight=p["group_of_weight"], hierarchy=p["hierarchy"],
                                 max_per_image=p["max_per_image"])
    ours = evaluate_oid_challenge(to_challenge_gt(gt_boxes, gt_masks, gt_labels), to_predictions(preds),
                                  group_of_weight=p["group_of_weight"], hierarchy=p["hierarchy"],
                                  class_mids=p["classes"], max_predictions_per_image=p["max_per_image"],
                                  num_workers=2 if seed % 10 == 0 else 1, progress=False)
    _compare(ours, ref)


@pytest.mark.parametrize("seed", range(100, 108))
def test_equals_straightforward_implementation_through_csv_files(seed, tmp_path):
    gt_boxes, gt_masks, gt_labels, preds, p = random_case(seed)
    ref = oid_reference.evaluate(gt_boxes, gt_masks, gt_labels, preds, classes=None,
                                 group_of_weight=p["group_of_weight"], hierarchy=p["hierarchy"],
                                 max_per_image=p["max_per_image"])
    paths = {k: os.path.join(tmp_path, k + ".csv") for k in ("boxes", "masks", "labels", "preds")}
    write_ground_truth_csvs(to_challenge_gt(gt_boxes, gt_masks, gt_labels), paths["boxes"], paths["masks"],
                            paths["labels"])
    write_predictions_csv(paths["preds"], to_predictions(preds))
    hierarchy_path = None
    if p["hierarchy"] is not None:
        import json

        hierarchy_path = os.path.join(tmp_path, "hierarchy.json")
        with open(hierarchy_path, "w") as f:
            json.dump(p["hierarchy"], f)
    ours = evaluate_oid_challenge_files(paths["boxes"], paths["masks"], paths["labels"], paths["preds"],
                                        hierarchy=hierarchy_path, group_of_weight=p["group_of_weight"],
                                        max_predictions_per_image=p["max_per_image"], num_workers=1,
                                        progress=False)
    _compare(ours, ref)


def crowded_case(seed):
    """One image with over 255 GT masks and predictions (pycocotools' 255-element limits), four
    classes mixing masked, mask-less, group-of and empty GT, masks on all four image borders, and
    detections near GT, on borders, empty, and far away."""
    rng = np.random.default_rng(seed)
    h, w = 24, 30
    classes = FLAT
    gt_boxes, gt_masks, preds, objs = [], [], [], []
    for k in range(280):
        label = classes[k % 4]
        m = _blob(rng, h, w)
        side = k % 5
        if side == 0:
            m[0, :] = 1
        elif side == 1:
            m[-1, rng.integers(w):] = 1
        elif side == 2:
            m[:, 0] = 1
        elif side == 3:
            m[rng.integers(h):, -1] = 1
        if k % 23 == 0:
            m[:] = 0  # an empty GT mask is mask-less
        group = int(rng.random() < 0.2)
        xmin, xmax, ymin, ymax = box_of(m) if m.any() else (0.1, 0.4, 0.2, 0.5)
        row = {"image": "big", "label": label, "xmin": xmin, "xmax": xmax, "ymin": ymin, "ymax": ymax, "group": group}
        gt_boxes.append(dict(row))
        if k % 7 != 0:  # every 7th object has a box only
            gt_masks.append(dict(row, mask=m))
        objs.append((label, m))
    for k in range(300):
        r = rng.random()
        if r < 0.5:
            label, m = objs[rng.integers(len(objs))]
            m = _shifted(rng, m) if m.any() else _blob(rng, h, w)
        elif r < 0.6:
            label, m = classes[rng.integers(4)], np.zeros((h, w), np.uint8)
            m[:, -1] = 1  # a border strip
        elif r < 0.65:
            label, m = classes[rng.integers(4)], np.zeros((h, w), np.uint8)
        else:
            label, m = classes[rng.integers(4)], _blob(rng, h, w)
        preds.append({"image": "big", "label": label, "score": float(rng.integers(1, 20)) / 20, "mask": m})
    labels = [{"image": "big", "label": c, "conf": 1} for c in classes]
    return gt_boxes, gt_masks, labels, preds


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("group_of_weight", [0.0, 1.0])
def test_equals_straightforward_implementation_on_a_crowded_image(seed, group_of_weight):
    gt_boxes, gt_masks, gt_labels, preds = crowded_case(seed)
    ref = oid_reference.evaluate(gt_boxes, gt_masks, gt_labels, preds, classes=FLAT,
                                 group_of_weight=group_of_weight, max_per_image=None)
    ours = evaluate_oid_challenge(to_challenge_gt(gt_boxes, gt_masks, gt_labels), to_predictions(preds),
                                  group_of_weight=group_of_weight, class_mids=FLAT, max_predictions_per_image=None,
                                  num_workers=1, progress=False)
    _compare(ours, ref)
    assert ours["skipped"]["predictions_with_empty_masks"] > 0
    assert all(0.0 < ap < 1.0 for ap in ref["per_class"].values())  # a case with TPs and FPs in every class
