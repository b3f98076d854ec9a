"""OIDChallengeEvaluator on the registered miniature ``oid_v6_seg_val`` (data registration <-> metric)."""
import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import Boxes, Instances

from alpseg.evaluation.oid.evaluator import OIDChallengeEvaluator


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


def _evaluate(name, records, tmp_path, shift=0, **kwargs):
    ev = OIDChallengeEvaluator(name, output_dir=str(tmp_path), distributed=False, num_workers=1, **kwargs)
    ev.reset()
    for r in records:
        ev.process([{"image_id": r["image_id"]}], [_perfect(r, shift)])
    return ev.evaluate()["oid_challenge"], ev._last_results


def test_perfect_predictions_score_100_on_every_leaf(miniature_root, tmp_path):
    """GT-as-prediction on the real 300-class hierarchy: AP 100 on every class a miniature object
    belongs to; the parents that get GT only by expansion (Squash over Pumpkin, Turtle and Reptile
    over Tortoise, Fish over Goldfish, Hat over Sombrero) have no predictions (the official protocol does not expand predictions), and Bird
    also counts the owls, which a perfect *leaf* detector does not call birds."""
    from alpseg.data.miniature import CLASSES

    name = "oid_v6_seg_val"
    records = DatasetCatalog.get(name)
    res, full = _evaluate(name, records, tmp_path)
    names = {c.oid_mid: c for c in CLASSES}
    per_class = full["per_class"]
    leaves = {m for m in per_class if m in names and m != "/m/015p6"}
    assert leaves == set(names) - {"/m/015p6"}
    assert all(per_class[m] == pytest.approx(1.0) for m in leaves)
    # Squash, Turtle, Reptile, Fish (over Goldfish), Hat (over Sombrero)
    parents = {"/m/0dv77", "/m/09dzg", "/m/06bt6", "/m/0ch_cf", "/m/02dl1y"}
    assert {m for m in per_class if m not in names} == parents
    assert all(per_class[m] == 0.0 for m in parents)
    num_birds = sum(a["category_id"] == MetadataCatalog.get(name).thing_mids.index("/m/015p6")
                    for r in records for a in r["annotations"])
    assert full["num_gt"]["/m/015p6"] > num_birds and per_class["/m/015p6"] < 1.0  # owls are birds too
    # masks moved far off their objects find nothing
    res, _ = _evaluate(name, records, tmp_path, shift=records[0]["width"] // 2)
    assert res["AP50"] < 50.0
    assert len(MetadataCatalog.get(name).thing_mids) == len(MetadataCatalog.get(name).thing_classes)


def _model_outputs(records, thing_classes, vocabulary):
    """What a model with ``vocabulary`` would output: each object found with its own class (every third
    one missed by a shifted mask), plus a wrong-class guess on every fourth object; ``pred_classes``
    index the vocabulary, and classes outside it cannot be predicted."""
    rng = np.random.default_rng(0)
    index = {p: i for i, p in enumerate(vocabulary)}
    outs = []
    for r in records:
        h, w = r["height"], r["width"]
        masks, scores, classes = [], [], []
        for k, a in enumerate(r["annotations"]):
            m = mask_utils.decode(a["segmentation"]).astype(bool)
            guesses = [(thing_classes[a["category_id"]], np.roll(m, w // 2, axis=1) if k % 3 == 2 else m)]
            if k % 4 == 1:
                guesses.append(("dolphin" if a["phrase"] != "dolphin" else "apple", m))
            for phrase, mask in guesses:
                score = float(rng.uniform(0.05, 1.0))  # drawn for every guess: the same draws in every run
                if phrase in index:
                    masks.append(mask)
                    scores.append(score)
                    classes.append(index[phrase])
        inst = Instances((h, w))
        inst.pred_masks = torch.as_tensor(np.stack(masks) if masks else np.zeros((0, h, w), bool))
        inst.scores = torch.tensor(scores, dtype=torch.float32)
        inst.pred_classes = torch.tensor(classes, dtype=torch.long)
        inst.pred_boxes = Boxes(torch.zeros(len(classes), 4))
        outs.append({"instances": inst})
    return outs


def _per_class(name, records, vocabulary, tmp_path):
    thing = MetadataCatalog.get(name).thing_classes
    ev = OIDChallengeEvaluator(name, output_dir=str(tmp_path), distributed=False, num_workers=1, plot=False,
                               vocabulary=vocabulary)
    ev.reset()
    for r, out in zip(records, _model_outputs(records, thing, vocabulary or thing)):
        ev.process([{"image_id": r["image_id"]}], [out])
    ev.evaluate()
    return ev._last_results


def test_shuffled_and_partial_vocabularies_give_the_per_class_ap_of_dataset_order(miniature_root, tmp_path):
    from alpseg.data.miniature import CLASSES

    name = "oid_v6_seg_val"
    records = DatasetCatalog.get(name)
    thing = list(MetadataCatalog.get(name).thing_classes)
    reference = _per_class(name, records, None, tmp_path)["per_class"]
    assert 0.2 < np.mean([reference[c.oid_mid] for c in CLASSES]) < 0.9  # neither trivial nor hopeless

    shuffled = list(np.random.default_rng(1).permutation(thing))
    assert _per_class(name, records, shuffled, tmp_path)["per_class"] == reference

    # the miniature classes (and Bird's parent-free siblings) in another order, with a phrase the
    # dataset does not have: only those classes are scored, each exactly as before
    partial = ["tortoise", "unicorn"] + [c.name for c in reversed(CLASSES) if c.name != "tortoise"]
    res = _per_class(name, records, partial, tmp_path)
    assert res["per_class"] == {c.oid_mid: reference[c.oid_mid] for c in CLASSES}
    assert res["vocabulary_phrases_not_in_dataset"] == ["unicorn"]
    assert res["skipped"]["gt_rows_of_unknown_classes"] > 0  # Squash, Turtle, Reptile rows are not scored


def test_a_two_phrase_vocabulary_credits_the_right_class(miniature_root, tmp_path):
    """The bug of issue 18: with "dolphin,apple" a perfect dolphin was credited to Apple."""
    name = "oid_v6_seg_val"
    records = DatasetCatalog.get(name)
    res = _per_class(name, records, ["dolphin", "apple"], tmp_path)
    assert set(res["per_class"]) == {"/m/02hj4", "/m/014j1m"}  # Dolphin, Apple
    ref = _per_class(name, records, None, tmp_path)["per_class"]
    assert res["per_class"]["/m/02hj4"] == ref["/m/02hj4"] and res["per_class"]["/m/014j1m"] == ref["/m/014j1m"]


def test_vocabularies_that_cannot_be_scored_are_refused(miniature_root):
    with pytest.raises(ValueError, match="no phrase of the test vocabulary"):
        OIDChallengeEvaluator("oid_v6_seg_val", distributed=False, vocabulary=["unicorn", "yeti"])
    with pytest.raises(ValueError, match="twice"):
        OIDChallengeEvaluator("oid_v6_seg_val", distributed=False, vocabulary=["Apple", "apple"])


def test_vocabulary_and_expansion_come_from_the_config(miniature_root, tmp_path):
    from alpseg.config import get_cfg

    cfg = get_cfg()
    cfg.MODEL.OPEN_VOCAB.TEST_VOCABULARY = "owl,bird,dolphin"
    cfg.TEST.OID_EXPAND_PREDICTIONS = True
    ev = OIDChallengeEvaluator(cfg, "oid_v6_seg_val", output_dir=str(tmp_path))
    assert ev._vocabulary == ["owl", "bird", "dolphin"] and ev._expand_predictions
    records = DatasetCatalog.get("oid_v6_seg_val")
    ev._distributed, ev._num_workers, ev._plot = False, 1, False
    for r, out in zip(records, _model_outputs(records, MetadataCatalog.get("oid_v6_seg_val").thing_classes,
                                              ev._vocabulary)):
        ev.process([{"image_id": r["image_id"]}], [out])
    metrics = ev.evaluate()["oid_challenge"]
    full = ev._last_results
    # owls found as owls count for Bird once predictions are expanded
    assert full["expanded_predictions"]["per_class"]["/m/015p6"] > full["per_class"]["/m/015p6"]
    assert metrics["AP50_novel_with_base_ancestor"] == pytest.approx(100 * full["per_class"]["/m/09d5_"])
    assert metrics["AP50_novel_without_base_ancestor"] == pytest.approx(100 * full["per_class"]["/m/02hj4"])
    assert metrics["AP50_expanded"] == pytest.approx(100 * full["expanded_predictions"]["mAP"])
    # summaries never look like detectron2's per-category "AP50-<class>" keys
    per_category = {k for k in metrics if k.startswith("AP50-")} - {"AP50-base", "AP50-novel"}
    assert per_category == {f"AP50-{full['class_names'][m]}" for m in full["per_class"]}
