"""FCOS-MO: per-instance loss switches, matching, scoring, inference limits, CPU training steps."""
import math

import pytest
import torch

from detectron2.modeling import build_model
from detectron2.structures import pairwise_iou
from detectron2.utils.events import EventStorage

from alpseg.modeling.fcos_mo import FCOSMO

from fcos_mo_batches import make_batch, make_instances

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


def test_mixed_batch_losses_and_two_sgd_steps(tiny_cfg):
    torch.manual_seed(0)
    model = build_model(tiny_cfg)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    history = []
    batch = _mixed_batch()
    with EventStorage():
        for _ in range(3):
            losses = model(batch)
            total = sum(losses.values())
            assert all(torch.isfinite(v) for v in losses.values())
            opt.zero_grad()
            total.backward()
            opt.step()
            history.append({k: v.item() for k, v in losses.items()})
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
    bias = model.head.classifier.fg_bias.item()
    for r in range(3):
        logits = [(emb[0, r] @ text[k]).item() / 0.01 + bias for k in range(2)] + [0.0]
        z = sum(math.exp(v - max(logits)) for v in logits)
        for k in range(2):
            prob = math.exp(logits[k] - max(logits)) / z
            expected = math.sqrt(prob / (1 + math.exp(-ctr[0, r, 0].item())))
            assert scores[0, r, k].item() == pytest.approx(expected, rel=1e-4, abs=1e-6)
    model.centerness = False
    torch.testing.assert_close(model.dense_scores(emb, text, None), torch.softmax(
        model.head.classifier.logits(emb, text), dim=-1)[..., :-1])


def test_inference_caps_detections_and_applies_nms_per_class(tiny_cfg):
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
