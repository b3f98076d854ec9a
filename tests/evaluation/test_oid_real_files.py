"""The Open Images metric on real files: six verbatim OID v6 validation masks, the real challenge-2019
hierarchy and class lists (shipped ones, and the 500-class list from ``<repo>/../shared``)."""
import json
import os

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from alpseg.data.datasets.class_lists import (OID_SEGMENTABLE_CLASSES, OID_SEGMENTABLE_HIERARCHY, coco_oid_base_rows,
                                              oid_base_mids)
from alpseg.evaluation.oid.challenge import evaluate_oid_challenge
from alpseg.evaluation.oid.hierarchy import load_hierarchy
from alpseg.evaluation.oid.io import (ImagePredictions, mid_from_mask_path, read_class_descriptions,
                                     read_ground_truth_csvs)
from alpseg.evaluation.oid.masks import decode_challenge_mask

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(REPO, "..", "shared", "data", "openimages")
REAL_ROWS = os.path.join(SHARED, "real_rows", "validation_masks_6_rows.csv")

HAMBURGER, SANDWICH, AIRPLANE, AIRCRAFT = "/m/0cdn1", "/m/0l515", "/m/0cmf2", "/m/0k5j"
BUS, ELEPHANT, SPOON = "/m/01bjv", "/m/0bwd_0j", "/m/0cmx8"


def _shared(path):
    if not os.path.isfile(path):  # CI clones next to ../shared; a missing copy is a set-up error, not a skip
        pytest.fail(f"{path} not found: the real Open Images files are expected in <repo>/../shared/data/openimages")
    return path


@pytest.fixture(scope="module")
def real_gt():
    return read_ground_truth_csvs(None, _shared(REAL_ROWS), None, strict=True)


def test_the_shipped_lists_are_the_real_ones():
    classes = read_class_descriptions(OID_SEGMENTABLE_CLASSES)
    h = load_hierarchy(OID_SEGMENTABLE_HIERARCHY)
    assert len(classes) == 300 and set(h.ancestors) == set(classes)
    parents = {m for m, d in h.descendants.items() if d}
    assert (len(parents), len(classes) - len(parents)) == (25, 275)
    assert h.ancestors["/m/0kmg4"] == {"/m/01dws", "/m/0138tl", "/m/01lrl"}  # Teddy bear < Bear, Toy; Bear < Carnivore
    for name in ("oid-challenge-2019-classes-description-segmentable300.csv",
                 "oid-challenge-2019-label300-segmentable-hierarchy.json"):  # shipped verbatim
        with open(os.path.join(os.path.dirname(OID_SEGMENTABLE_CLASSES), name), "rb") as a, \
                open(_shared(os.path.join(SHARED, name)), "rb") as b:
            assert a.read() == b.read(), name


def test_base_map_rows_are_real_segmentable_classes():
    classes = read_class_descriptions(OID_SEGMENTABLE_CLASSES)
    rows = coco_oid_base_rows()
    assert len(rows) == 60 and len(set(oid_base_mids())) == 60
    for r in rows:
        assert classes.get(r.oid_mid) == r.oid_name, r
    pairs = {r.coco_name: r.oid_name for r in rows}
    assert pairs["sports ball"] == "Ball" and pairs["mouse"] == "Computer mouse" and pairs["cow"] == "Cattle"
    for detection_only in ("bicycle", "umbrella", "chair", "dining table", "tv", "refrigerator"):
        assert detection_only not in pairs


def test_the_500_class_list_loads_with_repeated_display_names():
    classes = read_class_descriptions(_shared(os.path.join(SHARED, "oid-challenge-2019-classes-description-500.csv")))
    assert len(classes) == 500
    names = list(classes.values())
    assert names.count("Mouse") == 2 and names.count("Bench") == 2
    h = load_hierarchy(_shared(os.path.join(SHARED, "oid-challenge-2019-label500-hierarchy.json")))
    assert set(classes) <= set(h.ancestors)


def test_a_repeated_mid_is_refused(tmp_path):
    path = tmp_path / "classes.csv"
    path.write_text("/m/a,Apple\n/m/b,Bus\n/m/a,Apple again\n")
    with pytest.raises(ValueError, match=r"classes.csv:3: MID /m/a is listed twice"):
        read_class_descriptions(str(path))


def test_mid_from_mask_path():
    assert mid_from_mask_path("0032257bf3cd56d0_m0bwd_0j_8d4f7e06.png", "0032257bf3cd56d0") == ELEPHANT
    assert mid_from_mask_path("masks/x/001464cfae2a30b8_m0cdn1_5fa59bf3.png", "001464cfae2a30b8") == HAMBURGER
    with pytest.raises(ValueError, match="not <ImageID>_<MID>_<BoxID>.png"):
        mid_from_mask_path("otherimage_m0cdn1_5fa59bf3.png", "001464cfae2a30b8")


def test_real_rows_decode_with_the_mid_of_their_mask_path(real_gt):
    # LabelName says "sandwich" (a COCO-style name); the mask file name says Hamburger, the truth
    assert [r.label for r in real_gt.masks] == [HAMBURGER, AIRPLANE, AIRPLANE, BUS, ELEPHANT, SPOON]
    classes = read_class_descriptions(OID_SEGMENTABLE_CLASSES)
    assert [classes[r.label] for r in real_gt.masks] == ["Hamburger", "Airplane", "Airplane", "Bus", "Elephant", "Spoon"]
    for r in real_gt.masks:
        m = mask_utils.decode(decode_challenge_mask(r.mask, r.width, r.height))
        ys, xs = np.nonzero(m)
        assert m.shape == (r.height, r.width) and m.any()
        # the mask's extent is its box: real masks were drawn apart from the boxes and stray from
        # them by up to 0.9 % of the image side in these rows
        extent = (xs.min() / r.width, (xs.max() + 1) / r.width, ys.min() / r.height, (ys.max() + 1) / r.height)
        assert np.abs(np.subtract(extent, (r.xmin, r.xmax, r.ymin, r.ymax))).max() < 0.01


def _gt_as_predictions(gt):
    preds = {}
    for k, r in enumerate(gt.masks):
        p = preds.setdefault(r.image_id, ImagePredictions([], [], []))
        p.labels.append(r.label)
        p.masks.append(decode_challenge_mask(r.mask, r.width, r.height))
        p.scores = np.append(p.scores, 1.0 - 0.1 * k)
    return preds


def test_gt_as_prediction_scores_1_on_every_leaf_and_reports_the_hierarchy_views(real_gt, tmp_path):
    classes = list(read_class_descriptions(OID_SEGMENTABLE_CLASSES))
    r = evaluate_oid_challenge(real_gt, _gt_as_predictions(real_gt), hierarchy=OID_SEGMENTABLE_HIERARCHY,
                               class_mids=classes, base_classes=oid_base_mids(), num_workers=1, progress=False,
                               expand_predictions=True)
    leaves = {HAMBURGER, AIRPLANE, BUS, ELEPHANT, SPOON}
    assert {m: r["per_class"][m] for m in leaves} == {m: 1.0 for m in leaves}
    # official: GT is expanded to Sandwich and Aircraft, predictions are not
    assert set(r["per_class"]) == leaves | {SANDWICH, AIRCRAFT}
    assert r["per_class"][SANDWICH] == 0.0 and r["per_class"][AIRCRAFT] == 0.0
    assert r["num_gt"][AIRPLANE] == 2.0 and r["num_gt"][AIRCRAFT] == 2.0 and r["num_gt"][SANDWICH] == 1.0
    # base = Airplane, Bus, Elephant, Spoon, Sandwich; novel = Hamburger (under the base Sandwich) and
    # Aircraft (no base ancestor)
    assert r["AP50_base"] == pytest.approx(4 / 5) and r["AP50_novel"] == pytest.approx(1 / 2)
    assert r["novel_with_base_ancestor"] == [HAMBURGER] and r["novel_without_base_ancestor"] == [AIRCRAFT]
    assert r["AP50_novel_with_base_ancestor"] == 1.0 and r["AP50_novel_without_base_ancestor"] == 0.0
    # beside it, predictions copied to ancestors: every class is found
    e = r["expanded_predictions"]
    assert e["per_class"] == {m: 1.0 for m in leaves | {SANDWICH, AIRCRAFT}}
    assert e["AP50_base"] == 1.0 and e["AP50_novel"] == 1.0 and e["predictions_added_by_expansion"] == 3
    assert r["mAP"] == pytest.approx(5 / 7) and e["mAP"] == 1.0
    json.dumps(r)  # the whole result is JSON


def test_without_expansion_the_json_has_no_expanded_block(real_gt):
    r = evaluate_oid_challenge(real_gt, _gt_as_predictions(real_gt), hierarchy=OID_SEGMENTABLE_HIERARCHY,
                               base_classes=oid_base_mids(), num_workers=1, progress=False)
    assert "expanded_predictions" not in r and "AP50_novel_with_base_ancestor" in r
    with pytest.raises(ValueError, match="needs the class hierarchy"):
        evaluate_oid_challenge(real_gt, {}, expand_predictions=True, num_workers=1, progress=False)
