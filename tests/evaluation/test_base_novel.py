"""COCOBaseNovelEvaluator: per-class AP50 and base / novel means on a hand-made COCO set."""
import json
import os
import uuid

import numpy as np
import pytest
import torch
from detectron2.data import MetadataCatalog
from detectron2.structures import Boxes, Instances

from alpseg.evaluation.base_novel import COCOBaseNovelEvaluator

S = 20
CATS = [(1, "apple"), (2, "bus"), (3, "cat")]
# (image id, category id, x0, y0, x1, y1); category 4 is in the JSON but not evaluated (like ZSD's 15)
GT = [(1, 1, 1, 1, 8, 8), (1, 2, 10, 10, 18, 18), (2, 3, 2, 2, 12, 12), (2, 4, 14, 0, 19, 5)]


def _ann(i, img, cat, x0, y0, x1, y1):
    return {"id": i, "image_id": img, "category_id": cat, "bbox": [x0, y0, x1 - x0, y1 - y0],
            "area": (x1 - x0) * (y1 - y0), "iscrowd": 0, "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]]}


@pytest.fixture
def coco_dataset(tmp_path):
    data = {"images": [{"id": i, "file_name": f"{i}.jpg", "width": S, "height": S} for i in (1, 2)],
            "annotations": [_ann(k + 1, *g) for k, g in enumerate(GT)],
            "categories": [{"id": c, "name": n} for c, n in CATS + [(4, "dog")]]}
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    name = f"test_coco_bn_{uuid.uuid4().hex[:8]}"
    MetadataCatalog.get(name).set(json_file=str(path), thing_classes=[n for _, n in CATS],
                                  thing_dataset_id_to_contiguous_id={1: 0, 2: 1, 3: 2},
                                  base_classes=["apple"], novel_classes=["bus", "cat"], evaluator_type="coco_base_novel")
    return name


def _pred(boxes, scores, classes):
    inst = Instances((S, S))
    inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
    inst.scores = torch.tensor(scores)
    inst.pred_classes = torch.tensor(classes)
    masks = np.zeros((len(boxes), S, S), bool)
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        masks[k, int(y0):int(y1), int(x0):int(x1)] = True
    inst.pred_masks = torch.as_tensor(masks)
    return inst


def test_base_novel_ap50(coco_dataset, tmp_path):
    ev = COCOBaseNovelEvaluator(coco_dataset, tasks=("bbox", "segm"), distributed=False, output_dir=str(tmp_path))
    ev.reset()
    ev.process([{"image_id": 1}, {"image_id": 2}], [
        # apple found; bus: a high-scoring FP far away, then the right box
        {"instances": _pred([[1, 1, 8, 8], [0, 12, 6, 19], [10, 10, 18, 18]], [0.9, 0.95, 0.8], [0, 1, 1])},
        {"instances": _pred([[13, 13, 19, 19]], [0.3], [0])},  # apple FP on image 2; cat never detected
    ])
    res = ev.evaluate()
    for task in ("bbox", "segm"):
        r = res[task]
        # apple: TP 0.9 then FP 0.3 -> precision 1 up to recall 1 -> 100
        # bus: FP 0.95, TP 0.8 -> interpolated precision 1/2 at every recall -> 50; cat: 0
        assert r["AP50-apple"] == pytest.approx(100.0)
        assert r["AP50-bus"] == pytest.approx(50.0)
        assert r["AP50-cat"] == pytest.approx(0.0)
        assert r["AP50-base"] == pytest.approx(100.0)
        assert r["AP50-novel"] == pytest.approx(25.0)
        assert r["AP50"] == pytest.approx(50.0)  # COCOeval's own AP50 = mean over the 3 classes
    assert os.path.isfile(tmp_path / "coco_base_novel_results.md")
    with open(tmp_path / "coco_base_novel_results.json") as f:
        saved = json.load(f)
    assert saved["per_category_ap50"]["segm"]["bus"] == pytest.approx(50.0)


def test_base_novel_rejects_unknown_classes(coco_dataset):
    with pytest.raises(ValueError, match="not in thing_classes"):
        COCOBaseNovelEvaluator(coco_dataset, distributed=False, base_classes=["zebra"])


def test_no_detection_at_all_scores_zero_for_classes_with_ground_truth(coco_dataset, tmp_path):
    """An empty submission (e.g. an untrained model) is AP 0 on classes with GT, not a missing task."""
    ev = COCOBaseNovelEvaluator(coco_dataset, tasks=("bbox", "segm"), distributed=False, output_dir=str(tmp_path))
    ev.reset()
    ev.process([{"image_id": 1}, {"image_id": 2}], [{"instances": _pred(np.zeros((0, 4)), [], [])}] * 2)
    res = ev.evaluate()
    for task in ("bbox", "segm"):
        assert res[task]["AP50-base"] == 0.0 and res[task]["AP50-novel"] == 0.0
        assert res[task]["AP50-apple"] == res[task]["AP50-bus"] == res[task]["AP50-cat"] == 0.0
