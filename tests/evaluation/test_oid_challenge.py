"""Open Images challenge mask metric: hand-worked cases (APs computed on paper in the comments)."""
import base64
import zlib

import numpy as np
import pycocotools.mask as mask_utils
import pytest

from alpseg.evaluation.oid.challenge import (
    average_precision,
    evaluate_oid_challenge,
    prepare_ground_truth,
)
from alpseg.evaluation.oid.hierarchy import expand_ground_truth, load_hierarchy
from alpseg.evaluation.oid.io import ImagePredictions
from alpseg.evaluation.oid.masks import decode_challenge_mask, encode_challenge_mask, encode_rle

from oid_cases import gt_instance, rect, to_challenge_gt, to_predictions

H = W = 10
A, B, C = "/m/a", "/m/b", "/m/c"


def run(gt_boxes, gt_masks, gt_labels, preds, **kw):
    kw.setdefault("num_workers", 1)
    kw.setdefault("progress", False)
    return evaluate_oid_challenge(to_challenge_gt(gt_boxes, gt_masks, gt_labels), to_predictions(preds), **kw)


def P(image, label, score, mask):
    return {"image": image, "label": label, "score": score, "mask": mask}


def L(image, label, conf=1):
    return {"image": image, "label": label, "conf": conf}


G1 = rect(H, W, 0, 0, 4, 4)  # 16 px
G2 = rect(H, W, 6, 6, 10, 10)  # 16 px, disjoint from G1
RIGHT = rect(H, W, 5, 0, 10, 10)  # group-of region, 50 px
ELSEWHERE = rect(H, W, 0, 6, 3, 9)  # overlaps nothing above except RIGHT? no: x<3, y 6..8


# ---------------------------------------------------------------- mask encoding


def test_challenge_mask_encoding_is_base64_zlib_of_rle_counts():
    m = rect(7, 5, 1, 2, 4, 6)
    text = encode_challenge_mask(m)
    counts = zlib.decompress(base64.b64decode(text))
    assert counts == mask_utils.encode(np.asfortranarray(m))["counts"]
    rle = decode_challenge_mask(text, width=5, height=7)
    assert (mask_utils.decode(rle) == m).all()
    with pytest.raises(ValueError, match="ImageWidth x ImageHeight"):
        decode_challenge_mask(text, width=6, height=7)
    with pytest.raises(ValueError, match="base64"):
        decode_challenge_mask("not a mask!", width=5, height=7)


# ---------------------------------------------------------------- matching rules


def test_duplicates_are_false_positives():
    b1, m1 = gt_instance("i1", A, G1)
    b2, m2 = gt_instance("i1", A, G2)
    preds = [P("i1", A, 0.9, G1), P("i1", A, 0.8, G1), P("i1", A, 0.7, G2)]
    r = run(b1 + b2, m1 + m2, [L("i1", A)], preds)
    # TP, FP (duplicate), TP: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> 1/2 * 1 + 1/2 * 2/3
    assert r["per_class"][A] == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert r["num_gt"][A] == 2


def test_best_gt_taken_means_false_positive_without_fallback():
    # det2 overlaps G1 best (IoU 12/16) and G1b at IoU 0.5; G1 is taken by det1 -> det2 stays FP
    g1 = rect(H, W, 0, 0, 4, 4)
    g1b = rect(H, W, 0, 1, 4, 5)  # IoU(g1, g1b) = 12/20
    det2 = rect(H, W, 0, 0, 4, 3)  # IoU with g1 = 12/16, with g1b = 8/20
    b1, m1 = gt_instance("i1", A, g1)
    b2, m2 = gt_instance("i1", A, g1b)
    r = run(b1 + b2, m1 + m2, [], [P("i1", A, 0.9, g1), P("i1", A, 0.8, det2)])
    # TP then FP: AP = 1/2 (G1b never found)
    assert r["per_class"][A] == pytest.approx(0.5)


@pytest.mark.parametrize("weight,expected", [(1.0, 2 / 3), (0.0, 0.5), (0.5, 0.6)])
def test_group_of_masks_with_weights(weight, expected):
    b1, m1 = gt_instance("i1", A, G1)
    bg, mg = gt_instance("i1", A, RIGHT, group=1)
    preds = [
        P("i1", A, 0.95, ELSEWHERE),  # FP
        P("i1", A, 0.9, G1),  # TP
        P("i1", A, 0.8, rect(H, W, 6, 1, 9, 4)),  # inside the group-of mask: absorbed
        P("i1", A, 0.7, rect(H, W, 5, 5, 8, 9)),  # absorbed too (same group-of: counted once)
    ]
    r = run(b1 + bg, m1 + mg, [L("i1", A)], preds, group_of_weight=weight)
    # w=1: GT 2; entries 0.95 FP, 0.9 TP, 0.8 TP(group-of) -> P 0, 1/2, 2/3 at R 0, 1/2, 1 -> 2/3
    # w=0: GT 1; entries 0.95 FP, 0.9 TP -> 1/2
    # w=.5: GT 1.5; cumTP 0, 1, 1.5; cumFP 1, 1, 1 -> P 0, .5, .6 at R 0, 2/3, 1 -> .6
    assert r["per_class"][A] == pytest.approx(expected)
    assert r["num_gt"][A] == pytest.approx(1 + weight)


def test_group_of_ioa_is_intersection_over_detection_area():
    bg, mg = gt_instance("i1", A, RIGHT, group=1)
    b1, m1 = gt_instance("i1", A, G1)
    half_in = rect(H, W, 3, 0, 7, 4)  # 16 px, 8 inside RIGHT: IoA 0.5 -> absorbed
    less = rect(H, W, 2, 0, 7, 4)  # 20 px, 8 inside: IoA 0.4 -> FP
    r = run(b1 + bg, m1 + mg, [], [P("i1", A, 0.9, G1), P("i1", A, 0.8, less), P("i1", A, 0.7, half_in)],
            group_of_weight=0.0)
    # TP, FP (0.8); 0.7 absorbed -> P 1, 1/2 at R 1, 1 -> AP 1
    assert r["per_class"][A] == pytest.approx(1.0)
    r = run(b1 + bg, m1 + mg, [], [P("i1", A, 0.9, less), P("i1", A, 0.8, G1)], group_of_weight=0.0)
    assert r["per_class"][A] == pytest.approx(0.5)  # FP then TP


def test_maskless_boxes_free_then_taken():
    # a box-only GT (no mask row) at G1's place, and a masked GT at G2
    bb, _ = gt_instance("i1", A, G1, with_mask=False)
    b2, m2 = gt_instance("i1", A, G2)
    preds = [P("i1", A, 0.9, G1), P("i1", A, 0.8, G1), P("i1", A, 0.7, G2)]
    r = run(bb + b2, m2, [], preds)
    # 0.9 takes the free box -> ignored; 0.8 finds it taken -> FP; 0.7 TP. GT counted: 1 (the masked one)
    # entries 0.8 FP, 0.7 TP -> P 0, 1/2 at R 0, 1 -> 1/2
    assert r["num_gt"][A] == 1
    assert r["per_class"][A] == pytest.approx(0.5)
    # without the 0.8 duplicate: 0.9 ignored, 0.7 TP -> AP 1
    r = run(bb + b2, m2, [], [preds[0], preds[2]])
    assert r["per_class"][A] == pytest.approx(1.0)


def test_maskless_group_of_box_ignores_detections_inside():
    bb, _ = gt_instance("i1", A, RIGHT, group=1, with_mask=False)
    b1, m1 = gt_instance("i1", A, G1)
    preds = [P("i1", A, 0.95, rect(H, W, 6, 0, 9, 3)), P("i1", A, 0.9, G1), P("i1", A, 0.8, ELSEWHERE)]
    r = run(bb + b1, m1, [], preds)
    # 0.95 inside the mask-less group-of box -> ignored; 0.9 TP, 0.8 FP -> AP 1; GT counted 1 (not the box)
    assert r["per_class"][A] == pytest.approx(1.0)
    assert r["num_gt"][A] == 1


def test_empty_gt_mask_counts_as_maskless_and_empty_prediction_dropped():
    empty = np.zeros((H, W), np.uint8)
    b1, m1 = gt_instance("i1", A, G1)
    bx, mx = gt_instance("i1", A, empty, box=(0.6, 1.0, 0.6, 1.0))  # empty mask: a mask-less box at G2
    r = run(b1 + bx, m1 + mx, [], [P("i1", A, 0.99, empty), P("i1", A, 0.9, G2), P("i1", A, 0.8, G1)])
    # empty prediction dropped; 0.9 takes the mask-less box (ignored); 0.8 TP -> AP 1 with 1 counted GT
    assert r["num_gt"][A] == 1
    assert r["per_class"][A] == pytest.approx(1.0)
    assert r["skipped"]["predictions_with_empty_masks"] == 1


def test_boxes_and_masks_join_on_exact_coordinates():
    b1, m1 = gt_instance("i1", A, G1)
    # the same object, but the box row's XMax differs in the last digit: no join -> a mask-less box and a mask
    b1[0]["xmax"] = 0.4000001
    gt = prepare_ground_truth(to_challenge_gt(b1, m1, []))
    img = gt.images["i1"]
    assert len(img.masks) == 2 and sum(m is not None for m in img.masks) == 1
    b1[0]["xmax"] = 0.4
    img = prepare_ground_truth(to_challenge_gt(b1, m1, [])).images["i1"]
    assert len(img.masks) == 1 and img.masks[0] is not None


# ---------------------------------------------------------------- evaluatable classes and images


def test_labels_not_verified_in_image_are_dropped():
    ba, ma = gt_instance("i1", A, G1)
    bb, mb = gt_instance("i2", B, G2)
    bc, mc = gt_instance("i2", C, G1)
    labels = [L("i1", A), L("i1", B, 0)]  # B verified absent on i1; C neither labeled nor annotated on i1
    preds = [
        P("i1", A, 0.9, G1),  # TP for A
        P("i1", B, 0.95, G2),  # B is evaluatable on i1 (negative label): FP
        P("i1", C, 0.99, G1),  # C not evaluatable on i1: dropped
        P("i2", B, 0.5, G2),  # TP for B
        P("i2", C, 0.3, G1),  # TP for C
        P("i3", A, 0.99, G1),  # i3 has no GT rows: dropped
    ]
    r = run(ba + bb + bc, ma + mb + mc, labels, preds)
    assert r["per_class"][A] == pytest.approx(1.0)
    assert r["per_class"][B] == pytest.approx(0.5)  # 0.95 FP before 0.5 TP
    assert r["per_class"][C] == pytest.approx(1.0)  # the 0.99 FP on i1 did not count
    assert r["skipped"]["predictions_not_evaluatable_in_image"] == 1
    assert r["skipped"]["predictions_on_images_without_gt"] == 1


def test_class_with_gt_and_no_detection_has_ap_zero_and_counts_in_map():
    ba, ma = gt_instance("i1", A, G1)
    bb, mb = gt_instance("i1", B, G2)
    r = run(ba + bb, ma + mb, [], [P("i1", A, 0.9, G1)])
    assert r["per_class"] == {A: 1.0, B: 0.0}
    assert r["mAP"] == pytest.approx(0.5)


def test_classes_without_counted_gt_are_not_in_map():
    ba, ma = gt_instance("i1", A, G1)
    bb, _ = gt_instance("i1", B, G2, with_mask=False)  # B only has a mask-less box: nothing counted
    r = run(ba + bb, ma, [L("i1", C, 0)], [P("i1", A, 0.9, G1), P("i1", B, 0.9, G2), P("i1", C, 0.9, G2)])
    assert set(r["per_class"]) == {A}
    assert r["mAP"] == pytest.approx(1.0)


def test_score_ties_later_detection_counts_first():
    ba, ma = gt_instance("i1", A, G1)
    labels = [L("i2", A, 0)]
    r = run(ba, ma, labels, [P("i1", A, 0.5, G1), P("i2", A, 0.5, G1)])
    # tie: the later entry (i2, FP) is ranked first, as TF's argsort(scores)[::-1] does -> P 0, 1/2 -> 1/2
    assert r["per_class"][A] == pytest.approx(0.5)
    r = run(ba, ma, labels, [P("i1", A, 0.5, G1), P("i2", A, 0.4, G1)])
    assert r["per_class"][A] == pytest.approx(1.0)


def test_max_predictions_per_image_keeps_the_best_scores():
    ba, ma = gt_instance("i1", A, G1)
    preds = [P("i1", A, 0.1 + 0.01 * k, ELSEWHERE) for k in range(5)] + [P("i1", A, 0.05, G1)]
    assert run(ba, ma, [], preds, max_predictions_per_image=5)["per_class"][A] == 0.0
    r = run(ba, ma, [], preds, max_predictions_per_image=None)
    assert r["per_class"][A] == pytest.approx(1 / 6)  # 5 FPs, then the TP: P = 1/6 at R = 1


# ---------------------------------------------------------------- hierarchy and base/novel


HIERARCHY = {"LabelName": "/m/root", "Subcategory": [
    {"LabelName": "/m/animal", "Subcategory": [{"LabelName": "/m/cat"}, {"LabelName": "/m/dog"}]},
    {"LabelName": "/m/car"},
]}


def test_hierarchy_relations_and_row_expansion():
    h = load_hierarchy(HIERARCHY)
    assert h.ancestors["/m/cat"] == {"/m/animal"} and "/m/root" not in h.ancestors
    assert h.descendants["/m/animal"] == {"/m/cat", "/m/dog"}
    b, m = gt_instance("i1", "/m/cat", G1)
    gt = expand_ground_truth(to_challenge_gt(b, m, [L("i1", "/m/cat"), L("i2", "/m/animal", 0), L("i3", "/m/car", 0)]),
                             HIERARCHY)
    assert [r.label for r in gt.boxes] == ["/m/cat", "/m/animal"]
    assert [r.label for r in gt.masks] == ["/m/cat", "/m/animal"]
    assert sorted((r.image_id, r.label, r.confidence) for r in gt.labels) == [
        ("i1", "/m/animal", 1.0), ("i1", "/m/cat", 1.0), ("i2", "/m/animal", 0.0), ("i2", "/m/cat", 0.0),
        ("i2", "/m/dog", 0.0), ("i3", "/m/car", 0.0)]


def test_hierarchy_expansion_in_the_metric():
    b, m = gt_instance("i1", "/m/cat", G1)
    labels = [L("i1", "/m/cat"), L("i3", "/m/animal", 0)]
    preds = [P("i1", "/m/animal", 0.9, G1), P("i1", "/m/cat", 0.7, G1), P("i3", "/m/cat", 0.95, G2)]
    r = run(b, m, labels, preds, hierarchy=HIERARCHY)
    # animal: the cat mask counts for it -> TP, AP 1. cat: i3 verified absent (expanded down) -> 0.95 FP
    # then 0.7 TP -> 1/2
    assert r["per_class"] == {"/m/animal": 1.0, "/m/cat": 0.5}
    r = run(b, m, labels, preds)  # no expansion: animal has no GT, cat on i3 is not evaluatable
    assert r["per_class"] == {"/m/cat": 1.0}


def test_base_novel_split():
    ba, ma = gt_instance("i1", A, G1)
    bb, mb = gt_instance("i1", B, G2)
    bc, mc = gt_instance("i2", C, G2)
    preds = [P("i1", A, 0.9, G1), P("i1", B, 0.9, G1), P("i1", B, 0.8, G2), P("i2", C, 0.1, G1)]
    r = run(ba + bb + bc, ma + mb + mc, [], preds, base_classes=[A])
    # A 1, B 1/2 (FP then TP), C 0
    assert r["AP50_base"] == pytest.approx(1.0)
    assert r["AP50_novel"] == pytest.approx(0.25)
    assert r["mAP"] == pytest.approx(0.5)
    r = run(ba + bb + bc, ma + mb + mc, [], preds, base_classes=[A], novel_classes=[B])
    assert r["AP50_novel"] == pytest.approx(0.5)


# ---------------------------------------------------------------- AP and bad input


def test_average_precision_voc_all_point():
    # TP FP TP FP over 3 GT: P 1, .5, 2/3, .5 at R 1/3, 1/3, 2/3, 2/3 -> 1/3 + 1/3 * 2/3
    ap = average_precision(np.array([0.9, 0.8, 0.7, 0.6]), np.array([1.0, 0, 1, 0]), 3)
    assert ap == pytest.approx(1 / 3 + 2 / 9)
    assert np.isnan(average_precision(np.zeros(0), np.zeros(0), 0))
    assert average_precision(np.zeros(0), np.zeros(0), 2) == 0.0


def test_prediction_mask_of_wrong_size_is_a_clear_error():
    ba, ma = gt_instance("i1", A, G1)
    with pytest.raises(ValueError, match="original image size"):
        run(ba, ma, [], [P("i1", A, 0.9, rect(H, W + 1, 0, 0, 4, 4))])


def test_gt_masks_of_different_sizes_in_one_image_is_a_clear_error():
    ba, ma = gt_instance("i1", A, G1)
    bb, mb = gt_instance("i1", B, rect(H + 2, W, 0, 0, 3, 3))
    with pytest.raises(ValueError, match="different sizes"):
        prepare_ground_truth(to_challenge_gt(ba + bb, ma + mb, []))


def test_unknown_prediction_labels_are_counted():
    ba, ma = gt_instance("i1", A, G1)
    preds = {"i1": ImagePredictions([A, "/m/zzz"], [0.9, 0.8], [encode_rle(G1), encode_rle(G1)])}
    r = evaluate_oid_challenge(to_challenge_gt(ba, ma, [L("i1", "/m/zzz")]), preds, class_mids=[A],
                               num_workers=1, progress=False)
    assert r["per_class"] == {A: 1.0}
    assert r["skipped"]["predictions_of_unknown_classes"] == 1
    assert r["skipped"]["gt_labels_of_unknown_classes"] == 1


def test_already_expanded_files_are_not_expanded_again():
    b, m = gt_instance("i1", "/m/cat", G1)
    once = expand_ground_truth(to_challenge_gt(b, m, [L("i1", "/m/cat")]), HIERARCHY)
    twice = expand_ground_truth(once, HIERARCHY)
    assert twice.boxes == once.boxes and twice.masks == once.masks
    r = evaluate_oid_challenge(once, to_predictions([P("i1", "/m/animal", 0.9, G1)]), hierarchy=HIERARCHY,
                               num_workers=1, progress=False)
    assert r["num_gt"]["/m/animal"] == 1  # not 2


def test_more_than_255_predictions_in_one_image():
    # pycocotools 2.0.11's area() breaks on lists longer than 255 under numpy 2; the metric must not
    ba, ma = gt_instance("i1", A, G1)
    preds = [P("i1", A, 0.5 + k / 1000, ELSEWHERE) for k in range(300)] + [P("i1", A, 0.1, G1)]
    r = run(ba, ma, [], preds, max_predictions_per_image=None)
    assert r["per_class"][A] == pytest.approx(1 / 301)


def test_mask_pairs_whose_extents_do_not_meet_are_not_decoded(monkeypatch):
    """The extent prefilter: a detection far from every GT mask is an FP without an IoU call, and a
    detection touching a GT extent edge-to-edge (no shared pixel) is not decoded either."""
    import alpseg.evaluation.oid.challenge as oc

    gt_mask = np.zeros((20, 20), np.uint8)
    gt_mask[0:5, 0:5] = 1
    near, edge, far = (np.zeros((20, 20), np.uint8) for _ in range(3))
    near[1:5, 1:6] = 1
    edge[0:5, 5:9] = 1  # starts at the column where the GT extent ends
    far[15:20, 15:20] = 1
    calls = []
    real = oc.rle_iou
    monkeypatch.setattr(oc, "rle_iou", lambda d, g, crowd: calls.append((len(d), len(g))) or real(d, g, crowd))
    dets = [encode_rle(m) for m in (near, edge, far)]
    boxes = oc.rle_extents_normalized(dets)
    gts = [encode_rle(gt_mask)]
    args = (np.array([0.9, 0.8, 0.7]), dets, boxes, gts, np.array([[0.0, 0.0, 0.25, 0.25]]), np.array([False]))
    scores, tp = oc.match_class(*args, gt_mask_boxes=oc.rle_extents_normalized(gts))
    assert calls == [(1, 1)]
    assert scores.tolist() == [0.9, 0.8, 0.7] and tp.tolist() == [1.0, 0.0, 0.0]
    calls.clear()
    assert [x.tolist() for x in oc.match_class(*args)] == [scores.tolist(), tp.tolist()]  # no prefilter
    assert calls == [(3, 1)]
