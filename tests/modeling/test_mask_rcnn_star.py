"""Mask R-CNN*: class-agnostic deltas, calibrated scores, image-label loss, ALP switches, CPU steps."""
import glob
import math
import os

import pytest
import torch
from torch.nn import functional as F

from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

from alpseg.config import load_config
from alpseg.modeling.meta_arch import MaskRCNNStar
from alpseg.modeling.proposal_generator import SelectiveRPN
from alpseg.modeling.roi_heads import OpenVocabFastRCNNOutputLayers, calibrated_scores, image_label_loss, largest_box_index

from alpseg.testing import TEST_EMBED_DIM as EMBED_DIM
from alpseg.testing import make_batch, make_instances
from alpseg.testing import tiny_mask_rcnn_star_overrides as tiny_opts

SIZE = (96, 128)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "*mask_rcnn_star*.yaml"))) + sorted(
    glob.glob(os.path.join(REPO, "configs", "Base-MaskRCNNStar.yaml"))
)


def tiny_model(bank_path, mode="boxes", frozen_norm=False, seed=0, config="Base-MaskRCNNStar.yaml"):
    torch.manual_seed(seed)
    cfg = load_config(os.path.join(REPO, "configs", config), tiny_opts(bank_path, mode, frozen_norm))
    model = build_model(cfg)
    model.train()
    return model


def _coco_image():
    return make_instances(SIZE, [[10, 10, 60, 70], [64, 20, 120, 90]], ["dog", "cat"], [False, False], [True, True])


def _alp_image():
    return make_instances(SIZE, [[20, 10, 90, 60], [40, 30, 110, 90]], ["sombrero", "dolphin"], [True, True], [False, False])


def _grads(module):
    return [p.grad for p in module.parameters() if p.requires_grad]


def _no_grad(module):
    return all(g is None or torch.all(g == 0) for g in _grads(module))


# ----------------------------------------------------------------------------------------- pieces
def test_calibrated_score_is_geometric_mean_on_numbers():
    probs = torch.tensor([[0.64, 0.16, 0.20], [0.09, 0.81, 0.10]])
    logits = torch.tensor([0.0, math.log(9.0)])  # sigmoid: 0.5 and 0.9
    out = calibrated_scores(probs, logits)
    expected = torch.tensor([[math.sqrt(0.32), math.sqrt(0.08), math.sqrt(0.10)],
                             [math.sqrt(0.081), math.sqrt(0.729), math.sqrt(0.09)]])
    torch.testing.assert_close(out, expected)


def test_predictor_scores_are_calibrated_softmax(bank_path):
    model = tiny_model(bank_path)
    pred = model.roi_heads.box_predictor
    logits = torch.tensor([[2.0, 0.0, 1.0], [0.0, 3.0, 0.0]])
    prop = Instances(SIZE, proposal_boxes=Boxes(torch.tensor([[0.0, 0, 10, 10], [5, 5, 20, 30]])),
                     objectness_logits=torch.tensor([1.5, -0.5]))
    (scores,) = pred.predict_probs((logits, torch.zeros(2, 4)), [prop])
    for r in range(2):
        z = [math.exp(v) for v in logits[r].tolist()]
        obj = 1 / (1 + math.exp(-prop.objectness_logits[r].item()))
        for c in range(3):
            assert scores[r, c].item() == pytest.approx(math.sqrt(z[c] / sum(z) * obj), rel=1e-5)
    pred.score_calibration = False
    (plain,) = pred.predict_probs((logits, torch.zeros(2, 4)), [prop])
    torch.testing.assert_close(plain, F.softmax(logits, dim=-1))


def test_box_deltas_are_class_agnostic_four_per_roi(bank_path):
    model = tiny_model(bank_path)
    pred = model.roi_heads.box_predictor
    assert isinstance(pred, OpenVocabFastRCNNOutputLayers)
    assert pred.bbox_pred.out_features == 4 and not hasattr(pred, "cls_score")
    x = torch.randn(7, pred.bbox_pred.in_features)
    logits, deltas = pred(x, torch.randn(5, EMBED_DIM))
    assert deltas.shape == (7, 4) and logits.shape == (7, 6)
    assert torch.all(logits[:, -1] == 0)  # zero background vector
    # Inference boxes: one box per RoI, whatever the vocabulary size.
    prop = Instances(SIZE, proposal_boxes=Boxes(torch.tensor([[10.0, 10, 50, 60]] * 7)),
                     objectness_logits=torch.zeros(7))
    (boxes,) = pred.predict_boxes((logits, deltas), [prop])
    assert boxes.shape == (7, 4)


def test_image_label_loss_soft_target_by_hand():
    logits = torch.tensor([[1.0, -0.5, 2.0], [0.3, 0.2, 0.1]])
    ids = [torch.tensor([0, 2]), torch.tensor([1, 1])]  # duplicates count once: K = 1
    z0 = [math.exp(v) for v in (1.0, -0.5, 2.0)]
    z1 = [math.exp(v) for v in (0.3, 0.2, 0.1)]
    l0 = -0.5 * (math.log(z0[0] / sum(z0)) + math.log(z0[2] / sum(z0)))
    l1 = -math.log(z1[1] / sum(z1))
    assert image_label_loss(logits, ids).item() == pytest.approx((l0 + l1) / 2, rel=1e-6)
    assert image_label_loss(logits[:0], []).item() == 0.0


def test_largest_box_index():
    boxes = Boxes(torch.tensor([[0.0, 0, 10, 10], [0, 0, 30, 5], [0, 0, 20, 20], [5, 5, 25, 25]]))
    assert largest_box_index(boxes) == 2  # ties (2 and 3) go to the first, the higher-scored proposal


# ----------------------------------------------------------------------------------------- image labels
@pytest.mark.parametrize("background", [False, True])
def test_image_label_loss_uses_largest_proposal_and_matches_hand_computation(bank_path, background):
    """ALP-only image, K = 2 phrases: 0.1 * -(1/2 log p(sombrero) + 1/2 log p(dolphin)) of the largest
    proposal's cosine / tau logits against the two batch phrases; the zero background logit (0) joins
    the softmax only with MODEL.MASK_RCNN_STAR.IMAGE_LABEL_BACKGROUND."""
    model = tiny_model(bank_path, mode="image_labels")
    heads = model.roi_heads
    assert heads.image_label_background is False  # the default leaves the background out
    heads.image_label_background = background
    pooled = []
    pooler_forward = heads.box_pooler.forward
    heads.box_pooler.forward = lambda feats, boxes: pooled.append([b.tensor.clone() for b in boxes]) or pooler_forward(feats, boxes)
    batch = make_batch([_alp_image()])
    captured = {}
    rpn_forward = model.proposal_generator.forward

    def spy(*args, **kwargs):
        proposals, losses = rpn_forward(*args, **kwargs)
        captured["proposals"] = proposals
        return proposals, losses

    model.proposal_generator.forward = spy
    with EventStorage():
        losses = model(batch)
    proposals = captured["proposals"][0].proposal_boxes
    largest = proposals.tensor[proposals.area().argmax()]
    assert len(pooled) == 1 and pooled[0][0].shape == (1, 4)  # only the largest proposal is pooled
    torch.testing.assert_close(pooled[0][0][0], largest)

    # Independent computation of the loss from the largest proposal's feature.
    with torch.no_grad():
        images = model.preprocess_image(batch)
        feats = model.backbone(images.tensor)
        x = heads.box_head(pooler_forward([feats[f] for f in heads.box_in_features], [Boxes(largest[None])]))
        region = F.normalize(heads.box_predictor.classifier.proj(x), dim=-1)[0]
        text = model.phrase_bank.lookup(["sombrero", "dolphin"])
        cos = [float(region @ F.normalize(text[k], dim=0)) for k in range(2)]
    tau = 0.01
    logits = [c / tau for c in cos] + ([0.0] if background else [])
    z = [math.exp(v - max(logits)) for v in logits]
    hand = 0.1 * -(0.5 * math.log(z[0] / sum(z)) + 0.5 * math.log(z[1] / sum(z)))
    assert losses["loss_image_label"].item() == pytest.approx(hand, rel=1e-4)


def test_no_box_variant_alp_images_give_no_rpn_or_box_loss(bank_path):
    """Mixed batch (COCO + ALP image) in image_labels mode: RPN, box and mask losses equal those of the
    COCO image alone; the ALP image only adds the image-label loss (and negatives for the classifier)."""
    model = tiny_model(bank_path, mode="image_labels", frozen_norm=True)
    with EventStorage():
        torch.manual_seed(5)
        mixed = model(make_batch([_coco_image(), _alp_image()]))
        torch.manual_seed(5)
        alone = model(make_batch([_coco_image()]))
    for k in ("loss_rpn_cls", "loss_rpn_loc", "loss_box_reg", "loss_mask"):
        torch.testing.assert_close(mixed[k], alone[k], msg=k)
        assert alone[k].item() > 0
    assert alone["loss_image_label"].item() == 0 and mixed["loss_image_label"].item() > 0

    # ALP-only batch: nothing but the image-label loss, no gradient to the RPN or the box regressor.
    model.zero_grad()
    with EventStorage():
        losses = model(make_batch([_alp_image(), _alp_image()]))
    for k in ("loss_rpn_cls", "loss_rpn_loc", "loss_box_reg", "loss_cls", "loss_mask"):
        assert losses[k].item() == 0.0, k
    sum(losses.values()).backward()
    assert _no_grad(model.proposal_generator) and _no_grad(model.roi_heads.box_predictor.bbox_pred)
    assert _no_grad(model.roi_heads.mask_head)
    assert model.roi_heads.box_predictor.classifier.proj.weight.grad.abs().sum() > 0


# ----------------------------------------------------------------------------------------- ALP boxes
def test_alp_only_batch_has_zero_mask_loss_and_no_mask_head_gradient(bank_path):
    model = tiny_model(bank_path, mode="boxes")
    with EventStorage():
        losses = model(make_batch([_alp_image(), _alp_image()]))
    assert losses["loss_mask"].item() == 0.0
    # In the ALP-supervised variant ALP boxes train the RPN, the box regressor and the classifier.
    for k in ("loss_rpn_cls", "loss_rpn_loc", "loss_box_reg", "loss_cls"):
        assert losses[k].item() > 0, k
    sum(losses.values()).backward()
    assert _no_grad(model.roi_heads.mask_head)
    assert not _no_grad(model.roi_heads.box_predictor.bbox_pred)


def test_alp_only_batch_with_syncbn_mask_head(bank_path):
    """The paper's SyncBN mask head must step on a batch without masks (it runs on an empty batch)."""
    torch.manual_seed(0)
    cfg = load_config(os.path.join(REPO, "configs", "Base-MaskRCNNStar.yaml"),
                      tiny_opts(bank_path) + ["MODEL.ROI_MASK_HEAD.NORM", "SyncBN"])
    model = build_model(cfg)
    model.train()
    with EventStorage():
        losses = model(make_batch([_alp_image(), _alp_image()]))
    assert losses["loss_mask"].item() == 0.0
    sum(losses.values()).backward()
    assert _no_grad(model.roi_heads.mask_head)


def test_none_mode_alp_images_train_nothing(bank_path):
    model = tiny_model(bank_path, mode="none")
    with EventStorage():
        losses = model(make_batch([_alp_image(), _alp_image()]))
    assert all(v.item() == 0.0 for v in losses.values()), losses


def test_mask_loss_ignores_alp_instances(bank_path):
    """Adding an ALP instance to a COCO image leaves the mask loss (GT boxes with masks) unchanged."""
    model = tiny_model(bank_path, mode="boxes", frozen_norm=True)
    extra = make_instances(SIZE, [[10, 10, 60, 70], [64, 20, 120, 90], [0, 0, 50, 50]], ["dog", "cat", "sombrero"],
                           [False, False, True], [True, True, False])
    with EventStorage():
        a = model(make_batch([_coco_image()]))["loss_mask"]
        b = model(make_batch([extra]))["loss_mask"]
    torch.testing.assert_close(a, b)


def test_selective_rpn_without_flags_is_detectron2_rpn(bank_path):
    model = tiny_model(bank_path, frozen_norm=True)
    rpn = model.proposal_generator
    assert isinstance(rpn, SelectiveRPN)
    batch = make_batch([_coco_image(), _alp_image()])
    images = model.preprocess_image(batch)
    feats = model.backbone(images.tensor)
    gts = [b["instances"] for b in batch]
    with EventStorage():
        torch.manual_seed(1)
        _, ours = rpn(images, feats, gts)
        torch.manual_seed(1)
        _, stock = super(SelectiveRPN, rpn).forward(images, feats, gts)
        torch.manual_seed(1)
        _, all_on = rpn(images, feats, gts, supervised=[True, True])
    for k in stock:
        torch.testing.assert_close(ours[k], stock[k])
        torch.testing.assert_close(all_on[k], stock[k])


# ----------------------------------------------------------------------------------------- steps
@pytest.mark.parametrize("mode", ["boxes", "image_labels", "none"])
def test_two_sgd_steps_and_inference(bank_path, mode):
    model = tiny_model(bank_path, mode=mode)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    batches = [
        make_batch([_coco_image(), _alp_image()]),  # mixed
        make_batch([_alp_image(), make_instances(SIZE, [], [], [], [])]),  # ALP-only with an emptied crop
    ]
    batches[1][1]["image_phrases"] = ["person", "car"]  # image-level record
    with EventStorage():
        for batch in batches:
            losses = model(batch)
            assert set(losses) == {"loss_cls", "loss_box_reg", "loss_image_label", "loss_mask",
                                   "loss_rpn_cls", "loss_rpn_loc"}
            assert all(torch.isfinite(v) for v in losses.values())
            opt.zero_grad()
            sum(losses.values()).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        out = model([{"image": b["image"], "height": 48, "width": 64} for b in batches[0]])
    for o in out:
        inst = o["instances"]
        assert inst.image_size == (48, 64) and len(inst) <= 100
        assert inst.pred_masks.shape[1:] == (48, 64)
        assert torch.all(inst.pred_classes < 3) and torch.all((inst.scores > 0.05) & (inst.scores <= 1))
    assert model.test_vocabulary[0] == ["dog", "cat", "sombrero"]


def test_calibrated_scores_reach_the_detections(bank_path):
    """End to end: with calibration off and on, each detection's score is its softmax prob, or the
    geometric mean with its proposal's RPN objectness."""
    model = tiny_model(bank_path)
    model.eval()
    heads = model.roi_heads
    heads.box_predictor.test_score_thresh = 0.0
    batch = [{"image": make_batch([_coco_image()])[0]["image"]}]
    with torch.no_grad():
        images = model.preprocess_image(batch)
        feats = model.backbone(images.tensor)
        proposals, _ = model.proposal_generator(images, feats, None)
        _, text = model.test_vocabulary
        heads.test_phrase_embeddings = text
        x = heads.box_head(heads.box_pooler([feats[f] for f in heads.box_in_features], [proposals[0].proposal_boxes]))
        probs = F.softmax(heads.box_predictor(x, text)[0], dim=-1)
        obj = torch.sigmoid(proposals[0].objectness_logits)
        _, kept = heads.box_predictor.inference(heads.box_predictor(x, text), proposals)
        dets = heads._forward_box(feats, proposals)[0]
    rows = kept[0]
    expected = torch.sqrt(probs[rows, dets.pred_classes] * obj[rows])
    torch.testing.assert_close(dets.scores, expected)


# ----------------------------------------------------------------------------------------- configs / errors
@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_every_config_loads_and_builds(bank_path, path):
    cfg = load_config(path, tiny_opts(bank_path, mode=None))
    assert cfg.MODEL.META_ARCHITECTURE == "MaskRCNNStar"
    model = build_model(cfg)
    assert isinstance(model, MaskRCNNStar)
    assert model.alp_supervision == cfg.MODEL.MASK_RCNN_STAR.ALP_SUPERVISION
    full = load_config(path)  # the shipped values
    assert full.MODEL.ROI_MASK_HEAD.HOURGLASS_DEPTH == 20 and full.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG
    assert (full.SOLVER.IMS_PER_BATCH, full.SOLVER.BASE_LR, full.SOLVER.WARMUP_ITERS) == (32, 0.05, 1000)
    assert full.SOLVER.MAX_ITER == (270000 if "oid" in path or "Base" in path else 90000)
    assert full.SOLVER.LR_SCHEDULER_NAME == "WarmupCosineLR" and full.SOLVER.AMP.ENABLED
    if "Base" not in path:  # the base leaves the datasets to its children
        assert full.DATALOADER.ALTERNATE_DATASETS == (len(full.DATASETS.TRAIN) > 1)


def test_variant_modes_of_the_configs():
    modes = {os.path.basename(p): load_config(p).MODEL.MASK_RCNN_STAR.ALP_SUPERVISION for p in CONFIGS}
    assert modes["mask_rcnn_star_coco_oid_openvocab.yaml"] == "none"
    assert modes["mask_rcnn_star_coco_oid.yaml"] == "boxes"
    assert modes["mask_rcnn_star_coco_oid_noboxes.yaml"] == "image_labels"
    assert load_config(os.path.join(REPO, "configs", "mask_rcnn_star_coco_oid_boxes.yaml")).DATASETS.TRAIN == (
        "coco_2017_train", "oid_v6_locnar_train_boxes")


def test_bad_inputs_fail_clearly(bank_path):
    cfg = load_config(os.path.join(REPO, "configs", "Base-MaskRCNNStar.yaml"), tiny_opts(bank_path, mode="labels"))
    with pytest.raises(ValueError, match="ALP_SUPERVISION"):
        build_model(cfg)
    model = tiny_model(bank_path)
    inst = _coco_image()
    inst.remove("gt_phrases")
    with EventStorage(), pytest.raises(KeyError, match="gt_phrases"):
        model(make_batch([inst]))
    unknown = make_instances(SIZE, [[10, 10, 60, 70]], ["zebra crossing"], [False], [True])
    with EventStorage(), pytest.raises(KeyError, match="zebra crossing"):
        model(make_batch([unknown]))
    cfg = load_config(os.path.join(REPO, "configs", "Base-MaskRCNNStar.yaml"),
                      tiny_opts(bank_path, mode="image_labels") + ["MODEL.PROPOSAL_GENERATOR.NAME", "RPN"])
    stock = build_model(cfg)
    stock.train()
    with EventStorage(), pytest.raises(ValueError, match="SelectiveRPN"):
        stock(make_batch([_alp_image()]))


def test_background_weight_is_the_shared_open_vocab_key(bank_path):
    """One key, MODEL.OPEN_VOCAB.BG_ALPHA, for both models; the old Mask R-CNN* key names it."""
    base = os.path.join(REPO, "configs", "Base-MaskRCNNStar.yaml")
    assert load_config(base).MODEL.OPEN_VOCAB.BG_ALPHA == 0.1  # FCOS-MO's, the ablation's better variant
    model = build_model(load_config(base, tiny_opts(bank_path) + ["MODEL.OPEN_VOCAB.BG_ALPHA", "1.0"]))
    assert model.roi_heads.box_predictor.bg_alpha == 1.0
    with pytest.raises(KeyError, match="MODEL.OPEN_VOCAB.BG_ALPHA"):
        load_config(base, ["MODEL.MASK_RCNN_STAR.BG_ALPHA", "0.1"])
