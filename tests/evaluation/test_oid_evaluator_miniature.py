"""OIDChallengeEvaluator on the registered miniature ``oid_v6_seg_val`` (data registration <-> metric)."""
import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import Boxes, Instances

from alpseg.evaluation.oid_evaluator import OIDChallengeEvaluator


def _perfect(record, shift=0):
    h, w = record["height"], record["width"]
    anns = record["annotations"]
    masks = np.stack([mask_utils.decode(a["segmentation"]).astype(bool) for a in anns]) if anns else \
        np.zeros((0, h, w), bool)
    if shift:
        masks = np.roll(masks, shift, axis=2)
    inst = Instances((h, w))
    inst.pred_masks = torch.as_tensor(masks)
    inst.scores = torch.linspace(0.9, 0.5, len(anns)) if anns else torch.zeros(0)
    inst.pred_classes = torch.tensor([a["category_id"] for a in anns], dtype=torch.long)
    inst.pred_boxes = Boxes(torch.zeros(len(anns), 4))
    return {"instances": inst}


def test_perfect_predictions_score_100(miniature_root, tmp_path):
    name = "oid_v6_seg_val"
    records = DatasetCatalog.get(name)
    ev = OIDChallengeEvaluator(name, output_dir=str(tmp_path), distributed=False, num_workers=1)
    ev.reset()
    for r in records:
        ev.process([{"image_id": r["image_id"]}], [_perfect(r)])
    res = ev.evaluate()["oid_challenge"]
    assert res["AP50"] == pytest.approx(100.0)
    assert res["AP50-base"] == pytest.approx(100.0) and res["AP50-novel"] == pytest.approx(100.0)
    # masks moved far off their objects find nothing
    ev.reset()
    for r in records:
        ev.process([{"image_id": r["image_id"]}], [_perfect(r, shift=r["width"] // 2)])
    assert ev.evaluate()["oid_challenge"]["AP50"] < 50.0
    assert len(MetadataCatalog.get(name).thing_mids) == len(MetadataCatalog.get(name).thing_classes)
