"""OIDChallengeEvaluator: detectron2 predictions -> the challenge metric, files and CSV round trip."""
import json
import os
import uuid

import numpy as np
import pytest
import torch
from detectron2.data import MetadataCatalog
from detectron2.structures import Boxes, Instances

from alpseg.evaluation.oid.challenge import evaluate_oid_challenge_files
from alpseg.evaluation.oid.evaluator import OIDChallengeEvaluator, instances_to_oid_predictions
from alpseg.evaluation.oid.io import write_ground_truth_csvs

from oid_cases import gt_instance, rect, to_challenge_gt

H, W = 12, 16
APPLE, BUS = "/m/apple", "/m/bus"


@pytest.fixture
def oid_dataset(tmp_path):
    g1, g2, g3 = rect(H, W, 0, 0, 5, 5), rect(H, W, 8, 4, 14, 10), rect(H, W, 2, 6, 7, 11)
    b1, m1 = gt_instance("img1", APPLE, g1)
    b2, m2 = gt_instance("img1", BUS, g2)
    b3, m3 = gt_instance("img2", BUS, g3)
    labels = [{"image": "img1", "label": APPLE, "conf": 1}, {"image": "img2", "label": APPLE, "conf": 0}]
    paths = {k: str(tmp_path / f"{k}.csv") for k in ("boxes", "masks", "labels")}
    write_ground_truth_csvs(to_challenge_gt(b1 + b2 + b3, m1 + m2 + m3, labels), paths["boxes"], paths["masks"],
                            paths["labels"])
    name = f"test_oid_{uuid.uuid4().hex[:8]}"
    MetadataCatalog.get(name).set(oid_gt=paths, thing_mids=[APPLE, BUS], thing_classes=["apple", "bus"],
                                  base_classes=["apple"], novel_classes=["bus"], evaluator_type="oid_challenge")
    return name, paths, (g1, g2, g3)


def _instances(masks, scores, classes):
    inst = Instances((H, W))
    inst.pred_masks = torch.as_tensor(np.stack(masks).astype(bool))
    inst.scores = torch.tensor(scores, dtype=torch.float32)
    inst.pred_classes = torch.tensor(classes, dtype=torch.int64)
    inst.pred_boxes = Boxes(torch.zeros(len(scores), 4))
    return inst


def test_evaluator_scores_detectron2_predictions(oid_dataset, tmp_path):
    name, paths, (g1, g2, g3) = oid_dataset
    out_dir = str(tmp_path / "out")
    ev = OIDChallengeEvaluator(name, output_dir=out_dir, distributed=False, write_challenge_csv=True, num_workers=1)
    ev.reset()
    ev.process([{"image_id": "img1"}, {"image_id": "img2"}], [
        {"instances": _instances([g1, g2, g3], [0.9, 0.6, 0.95], [0, 1, 1])},
        # apple verified absent on img2 -> FP for apple; bus found
        {"instances": _instances([g1, g3], [0.99, 0.7], [0, 1])},
    ])
    res = ev.evaluate()["oid_challenge"]
    # apple: 0.99 FP (img2), 0.9 TP -> 1/2. bus (2 GT): 0.95 FP, 0.7 TP, 0.6 TP -> P 0, 1/2, 2/3 at
    # R 0, 1/2, 1 -> 1/2 * 2/3 + 1/2 * 2/3 = 2/3
    assert res["AP50-apple"] == pytest.approx(50.0)
    assert res["AP50-bus"] == pytest.approx(200 / 3)
    assert res["AP50-base"] == pytest.approx(50.0)
    assert res["AP50-novel"] == pytest.approx(200 / 3)
    assert res["AP50"] == pytest.approx((50 + 200 / 3) / 2)
    with open(os.path.join(out_dir, "oid_challenge_results.json")) as f:
        saved = json.load(f)
    assert saved["per_class"][BUS] == pytest.approx(2 / 3)
    assert os.path.getsize(os.path.join(out_dir, "oid_challenge_per_category_ap.png")) > 0
    # the challenge CSV it wrote gives the same numbers through the file path of the metric
    again = evaluate_oid_challenge_files(paths["boxes"], paths["masks"], paths["labels"],
                                         os.path.join(out_dir, "oid_challenge_predictions.csv"),
                                         base_classes=[APPLE], num_workers=1, progress=False)
    assert again["mAP"] == pytest.approx(res["AP50"] / 100)


def test_evaluator_from_config_uses_group_of_weight(oid_dataset, tmp_path):
    from alpseg.config import get_cfg

    name, _, _ = oid_dataset
    cfg = get_cfg()
    cfg.TEST.OID_GROUP_OF_WEIGHT = 0.0
    ev = OIDChallengeEvaluator(cfg, name, str(tmp_path))
    assert ev._group_of_weight == 0.0 and ev._max_predictions == cfg.TEST.DETECTIONS_PER_IMAGE


def test_instances_conversion_and_errors():
    m = rect(H, W, 1, 2, 6, 9)
    p = instances_to_oid_predictions(_instances([m], [0.5], [1]), [APPLE, BUS])
    assert p.labels == [BUS] and p.masks[0]["size"] == [H, W]
    import pycocotools.mask as mask_utils

    assert (mask_utils.decode(p.masks[0]) == m).all()
    with pytest.raises(ValueError, match="out of range"):
        instances_to_oid_predictions(_instances([m], [0.5], [2]), [APPLE, BUS])
    inst = Instances((H, W))
    inst.scores = torch.tensor([0.5])
    inst.pred_classes = torch.tensor([0])
    with pytest.raises(ValueError, match="pred_masks"):
        instances_to_oid_predictions(inst, [APPLE])
    assert len(instances_to_oid_predictions(Instances((H, W), scores=torch.zeros(0),
                                                      pred_classes=torch.zeros(0, dtype=torch.long)), [APPLE])) == 0


def test_evaluator_requires_oid_metadata():
    name = f"test_oid_missing_{uuid.uuid4().hex[:8]}"
    MetadataCatalog.get(name).set(thing_classes=["a"])
    with pytest.raises(ValueError, match="oid_gt"):
        OIDChallengeEvaluator(name, distributed=False)
