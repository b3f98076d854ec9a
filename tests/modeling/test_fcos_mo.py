"""FCOS-MO: per-instance loss switches, matching, scoring, inference limits, CPU training steps."""
import math

import pytest
import torch

from detectron2.modeling import build_model
from detectron2.structures import pairwise_iou
from detectron2.utils.events import EventStorage

from alpseg.modeling.meta_arch import FCOSMO

from alpseg.testing import make_batch, make_instances

SIZE = (96, 128)


def _alp_only_batch():
    return make_batch([
        make_instances(SIZE, [[10, 10, 60, 70], [70, 20, 120, 90]], ["sombrero", "dolphin"], [True, True], [False, False]),
        make_instances(SIZE, [[30, 30, 90, 80]], ["small white dog"], [True], [False]),
    ])


def _mixed_batch():
    return make_batch([
        make_instances(SIZE, [[10, 10, 60, 70], [70, 20, 120, 90]], ["dog", "sombrero"], [False, True], [True, False]),
        make_instances(SIZE, [[20, 16, 100, 88]], ["cat"], [False], [True]),
    ], seed=1)


def _grads(module):
    return [p.grad for p in module.parameters() if p.requires_grad]


def test_builds_from_config_with_syncbn_on_cpu(tiny_cfg):
    model = build_model(tiny_cfg)
    assert isinstance(model, FCOSMO)
    assert type(model.backbone.bottom_up.stem.conv1.norm).__name__ == "SyncBatchNorm"
    # Towers keep one set of norm statistics per FPN level (detectron2's CycleBatchNormList).
    norms = [m for m in model.head.cls_subnet if type(m).__name__ == "CycleBatchNormList"]
    assert norms and all(len(n) == 5 for n in norms)
    assert len(model.mask_head.main_path_convs()) == 20


def test_alp_only_batch_has_no_box_or_mask_loss(tiny_cfg):
    model = build_model(tiny_cfg)
    model.train()
    with EventStorage():
        losses = model(_alp_only_batch())
    assert losses["loss_box_reg"].item() == 0.0
    assert losses["loss_mask"].item() == 0.0
    assert losses["loss_cls"].item() > 0 and losses["loss_centerness"].item() > 0
    sum(losses.values()).backward()
    assert all(g is None or torch.all(g == 0) for g in _grads(model.mask_head))
    assert all(g is None or torch.all(g == 0) for g in _grads(model.head.bbox_pred))
    # ALPs still train the classifier and centerness.
    assert model.head.classifier.proj.weight.grad.abs().sum() > 0
    assert model.head.ctrness.weight.grad.abs().sum() > 0


def _sgd_history(model, batch, lr, steps):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    history = []
    with EventStorage():
        for _ in range(steps):
            losses = model(batch)
            total = sum(losses.values())
            assert all(torch.isfinite(v) for v in losses.values())
            opt.zero_grad()
            total.backward()
            opt.step()
            history.append({k: v.item() for k, v in losses.items()})
    return history


def test_mixed_batch_losses_and_sgd_steps(tiny_cfg):
    # The paper's classifier (cos / tau, fixed zero background, no bias) starts with foreground logits
    # spread over tens of units: at LR 0.01 its loss rises in the first steps (docs/fcos_mo.md), so
    # the descent is checked at LR 0.001 over 5 steps.
    torch.manual_seed(0)
    model = build_model(tiny_cfg)
    model.train()
    history = _sgd_history(model, _mixed_batch(), lr=0.001, steps=5)
    assert history[0]["loss_box_reg"] > 0 and history[0]["loss_mask"] > 0
    assert history[-1]["loss_cls"] < history[0]["loss_cls"]
    assert any(g is not None and g.abs().sum() > 0 for g in _grads(model.mask_head))


def test_trains_under_autocast(tiny_cfg):
    """AMP (bf16 autocast on CPU here, fp16 on GPU): the GIoU loss runs in float32 and stays finite."""
    model = build_model(tiny_cfg)
    model.train()
    with EventStorage(), torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model(_mixed_batch())
    assert losses["loss_box_reg"].dtype == torch.float32 and losses["loss_cls"].dtype == torch.float32
    assert all(torch.isfinite(v) for v in losses.values()) and losses["loss_box_reg"] > 0
    sum(losses.values()).backward()


def test_empty_images_do_not_crash(tiny_cfg):
    model = build_model(tiny_cfg)
    model.train()
    empty = make_instances(SIZE, [], [], [], [])
    with EventStorage():
        losses = model(make_batch([empty, empty]))
        assert losses["loss_box_reg"].item() == 0 and losses["loss_mask"].item() == 0
        sum(losses.values()).backward()
        losses = model(make_batch([empty, make_instances(SIZE, [[10, 10, 60, 70]], ["dog"], [False], [True])]))
        assert losses["loss_mask"].item() > 0


def test_mask_loss_ignores_instances_without_masks(tiny_cfg):
    """A box-only / ALP instance added to a batch leaves the mask loss unchanged."""
    model = build_model(tiny_cfg)
    model.train()
    with_mask = [[10, 10, 60, 70]]
    # Two images per batch: the 1x1 P7 map of one small image cannot be batch-normalized.
    a = make_batch([make_instances(SIZE, with_mask, ["dog"], [False], [True])] * 2)
    b = make_batch([make_instances(SIZE, with_mask + [[70, 20, 120, 90]], ["dog", "car"], [False, False], [True, False])] * 2)
    with EventStorage():
        la, lb = model(a)["loss_mask"], model(b)["loss_mask"]
    torch.testing.assert_close(la, lb)


def test_matching_uses_center_radius_and_configured_size_ranges(tiny_cfg):
    model = build_model(tiny_cfg)
    feats = [torch.zeros(1, 1, 128 // s, 128 // s) for s in (8, 16, 32, 64, 128)]
    anchors = model.anchor_generator(feats)
    inst = make_instances((128, 128), [[44, 44, 84, 84]], ["dog"], [False], [False])
    level_sizes = [len(a) for a in anchors]

    def positives_per_level(matched):
        return [int(x) for x in torch.stack([(m >= 0).sum() for m in matched.split(level_sizes)])]

    # 40x40 box centered at 64: stride-8 points within 1.5 * 8 = 12 px of the center in x and y are
    # at 60 and 68 -> 2 x 2; their largest edge distance (24) is below 64, so only P3 takes it.
    (matched,) = model.match(anchors, [inst])
    assert positives_per_level(matched) == [4, 0, 0, 0, 0]
    # With a P3/P4 boundary at 20 px it moves to P4: stride-16 points at 56 and 72 (within 24 px).
    model.size_ranges = [20.0, 128.0, 256.0, 512.0]
    (matched,) = model.match(anchors, [inst])
    assert positives_per_level(matched) == [0, 4, 0, 0, 0]


def test_dense_scores_are_sqrt_prob_times_centerness(tiny_cfg):
    model = build_model(tiny_cfg).eval()
    emb = torch.nn.functional.normalize(torch.randn(1, 3, 8), dim=-1)
    text = torch.nn.functional.normalize(torch.randn(2, 8), dim=-1)
    ctr = torch.randn(1, 3, 1)
    scores = model.dense_scores(emb, text, ctr)
    for r in range(3):
        logits = [(emb[0, r] @ text[k]).item() / 0.01 for k in range(2)] + [0.0]
        z = sum(math.exp(v - max(logits)) for v in logits)
        for k in range(2):
            prob = math.exp(logits[k] - max(logits)) / z
            expected = math.sqrt(prob / (1 + math.exp(-ctr[0, r, 0].item())))
            assert scores[0, r, k].item() == pytest.approx(expected, rel=1e-4, abs=1e-6)
    model.centerness = False
    torch.testing.assert_close(model.dense_scores(emb, text, None), torch.softmax(
        model.head.classifier.logits(emb, text), dim=-1)[..., :-1])


def test_inference_caps_detections_and_applies_nms_per_class(tiny_cfg):
    tiny_cfg.MODEL.FCOS_MO.LEARNABLE_FG_BIAS = True  # a handle to make every location foreground
    model = build_model(tiny_cfg).eval()
    with torch.no_grad():
        # Every location scores ~1/3 for each of 3 classes and regresses a stride-sized square: more
        # than 100 candidates survive the threshold, and the same box appears for every class.
        model.head.classifier.fg_bias.fill_(50.0)
        model.head.bbox_pred.weight.zero_()
        model.head.bbox_pred.bias.fill_(0.5)  # stride-sized boxes tile the image: nothing clipped
        model.head.ctrness.weight.zero_()
        model.head.ctrness.bias.fill_(10.0)
    model.set_test_vocabulary(["dog", "cat", "sombrero"])
    batch = make_batch([make_instances((128, 128), [], [], [], [])])
    model.max_detections_per_image = 100000
    full = model(batch)[0]["instances"]
    assert len(full) > 100
    iou = pairwise_iou(full.pred_boxes, full.pred_boxes)
    same = full.pred_classes[:, None] == full.pred_classes[None, :]
    off_diag = ~torch.eye(len(full), dtype=torch.bool)
    assert iou[same & off_diag].max() <= 0.2 + 1e-6  # NMS at 0.2 within a class ...
    assert iou[~same].max() > 0.99  # ... but not across classes: one box kept once per class
    assert torch.all(full.scores >= 0.05)

    model.max_detections_per_image = 100
    out = model(batch)[0]["instances"]
    assert len(out) == 100
    assert out.pred_masks.shape == (100, 128, 128)
    torch.testing.assert_close(out.scores, full.scores.sort(descending=True).values[:100])

    # A smaller cap and a vocabulary set with explicit embeddings.
    model.max_detections_per_image = 7
    model.set_test_vocabulary(["a", "b"], embeddings=torch.nn.functional.normalize(torch.randn(2, 8), dim=-1))
    out = model(make_batch([make_instances((128, 128), [], [], [], [])]))[0]["instances"]
    assert len(out) == 7 and out.pred_classes.max() <= 1


def test_test_vocabulary_from_config_and_missing_phrase(tiny_cfg):
    model = build_model(tiny_cfg).eval()
    phrases, emb = model.test_vocabulary
    assert phrases == ["dog", "cat", "sombrero"] and emb.shape == (3, 8)
    with pytest.raises(KeyError, match="unicorn"):
        model.set_test_vocabulary(["unicorn"])


def test_no_centerness_ablation(tiny_cfg):
    tiny_cfg.MODEL.FCOS_MO.CENTERNESS = False
    model = build_model(tiny_cfg)
    assert not hasattr(model.head, "ctrness")
    model.train()
    with EventStorage():
        losses = model(_mixed_batch())
    assert set(losses) == {"loss_cls", "loss_box_reg", "loss_mask"}
    model.eval()
    model(make_batch([make_instances(SIZE, [], [], [], [])]))


def test_without_mask_head(tiny_cfg):
    tiny_cfg.MODEL.MASK_ON = False
    model = build_model(tiny_cfg)
    assert model.mask_head is None
    model.train()
    with EventStorage():
        assert "loss_mask" not in model(_mixed_batch())


def test_shipped_config_classifier_is_cos_over_tau_with_zero_background(tiny_cfg):
    """Paper 3.2: logits = cos / tau against the phrases and a fixed zero background embedding."""
    model = build_model(tiny_cfg).eval()
    clf = model.head.classifier
    assert clf.fg_bias is None
    assert sorted(n for n, _ in clf.named_parameters()) == ["proj.bias", "proj.weight"]
    torch.manual_seed(3)
    tower = torch.randn(2, 32, 3, 4)  # a classification-tower output
    text = torch.randn(5, 8)
    region = torch.nn.functional.normalize(
        torch.einsum("nchw,dc->nhwd", tower, clf.proj.weight) + clf.proj.bias, dim=-1)
    cos = region @ torch.nn.functional.normalize(text, dim=-1).t()
    expected = torch.cat([cos / 0.01, torch.zeros(2, 3, 4, 1)], dim=-1)
    logits = clf(tower, text)
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-3)
    assert torch.all(logits[..., -1] == 0)
    # What the (C + 1)-way softmax of inference sees (centerness off: the probabilities themselves).
    model.centerness = False
    emb = region.reshape(2, 12, 8)
    probs = model.dense_scores(emb, text, None)
    torch.testing.assert_close(probs, torch.softmax(expected.reshape(2, 12, 6), dim=-1)[..., :5], rtol=1e-4, atol=1e-6)


def test_matching_with_default_ranges_is_detectron2_fcos_rule(tiny_cfg):
    from detectron2.modeling.meta_arch.fcos import FCOS

    model = build_model(tiny_cfg)
    model.size_ranges = [64.0, 128.0, 256.0, 512.0]  # 4 and 8 strides of P3-P7: detectron2's bounds
    feats = [torch.zeros(1, 1, 512 // s, 512 // s) for s in (8, 16, 32, 64, 128)]
    anchors = model.anchor_generator(feats)
    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(30, 2, generator=gen) * 400
    wh = torch.rand(30, 2, generator=gen) * 300 + 4
    boxes = torch.cat([xy, xy + wh], dim=1).clamp(max=512)
    inst = make_instances((512, 512), boxes.tolist(), ["dog"] * 30, [False] * 30, [False] * 30)
    ours = model._match_anchors(inst.gt_boxes, anchors)
    theirs = FCOS._match_anchors(model, inst.gt_boxes, anchors)
    assert (theirs > 0).sum() > 50
    assert torch.equal(ours, theirs)


def _normalizer_probe(model):
    """Make the EMA normalizers the exact counts and record their names."""
    calls = []

    def exact(name, value, initial_value, momentum=0.9):
        calls.append((name, value))
        return max(value, 1)  # as the real EMA, which clamps the batch-wide count at 1

    model._ema_update = exact
    return calls


def test_giou_normalizer_counts_only_the_positives_it_sums_over(tiny_cfg):
    box = [[10, 10, 60, 70]]
    alp = [[70, 20, 120, 90]]  # disjoint from the box: no anchor point can match both
    with_alp = make_batch([make_instances(SIZE, box + alp, ["dog", "sombrero"], [False, True], [True, False])] * 2)
    without = make_batch([make_instances(SIZE, box, ["dog"], [False], [True])] * 2)
    model = build_model(tiny_cfg)
    model.train()
    calls = _normalizer_probe(model)
    with EventStorage() as storage:
        l_alp = model(with_alp)
        num_pos = storage.history("num_pos_anchors").latest() * 2
        num_alp_pos = storage.history("num_alp_pos_anchors").latest() * 2
        l_box = model(without)
    assert num_alp_pos > 0
    (cls_name, cls_norm), (box_name, box_norm), (plain_name, plain_norm) = calls
    assert (cls_name, box_name, plain_name) == ("loss_normalizer_alp", "loss_normalizer_alp_box", "loss_normalizer")
    assert cls_norm == num_pos and box_norm == num_pos - num_alp_pos == plain_norm
    # Same GIoU sum over the same box positives, divided by the same count: the ALPs change nothing.
    torch.testing.assert_close(l_alp["loss_box_reg"], l_box["loss_box_reg"])
    assert l_alp["loss_box_reg"] > 0


def test_one_shared_normalizer_when_alp_normalizers_off(tiny_cfg):
    tiny_cfg.MODEL.FCOS_MO.ALP_NORMALIZERS = False
    model = build_model(tiny_cfg)
    model.train()
    calls = _normalizer_probe(model)
    with EventStorage():
        model(_alp_only_batch())
        model(_mixed_batch())
    assert [name for name, _ in calls] == ["loss_normalizer", "loss_normalizer_box"] * 2
    # The ALP-only batch has no box positive: its raw GIoU count 0 goes to the EMA, which clamps the
    # batch-wide sum (over processes) at 1 (alpseg/modeling/ema.py); its loss is 0.
    assert calls[1][1] == 0
