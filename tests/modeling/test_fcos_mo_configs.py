"""Every shipped FCOS-MO config and every Table 2 (closed-vocabulary FCOSMask) config loads, builds (tiny
backbone) and trains 2 iterations / infers on hand-made batches."""
import glob
import math
import os

import pytest
import torch

from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

from alpseg.config import load_config
from alpseg.testing import make_batch, make_instances
from alpseg.testing import tiny_fcos_mo_overrides as tiny_overrides

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TABLE2_CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "fcos_reimpl", "*.yaml")))
CONFIGS = sorted(
    glob.glob(os.path.join(REPO, "configs", "fcos_mo_*.yaml"))
    + glob.glob(os.path.join(REPO, "configs", "ablations", "fcos_mo_*.yaml"))
    + [os.path.join(REPO, "configs", "Base-FCOS-MO.yaml")]
)
SIZE = (160, 224)  # P7 of 2x2: GroupNorm(32, 32) of the Table 2 towers needs more than one value


def test_all_configs_are_collected():
    names = {os.path.relpath(c, REPO) for c in CONFIGS + TABLE2_CONFIGS}
    assert {"configs/fcos_mo_coco_oid.yaml", "configs/fcos_mo_coco_oid_boxes.yaml", "configs/fcos_mo_coco_vocmasks.yaml",
            "configs/fcos_mo_coco_zsd.yaml", "configs/fcos_reimpl/fcos_R_50_FPN_1x.yaml"} <= names
    assert len([n for n in names if n.startswith("configs/ablations/")]) == 3
    assert len([n for n in names if n.startswith("configs/fcos_reimpl/")]) == 4


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, REPO))
def test_config_builds_trains_and_infers(path, bank_path):
    cfg = load_config(path, tiny_overrides(bank_path))
    assert cfg.MODEL.META_ARCHITECTURE == "FCOSMO"
    torch.manual_seed(0)
    model = build_model(cfg)
    model.train()
    mixed = make_batch([
        make_instances(SIZE, [[10, 10, 60, 70], [70, 20, 120, 90]], ["dog", "sombrero"], [False, True], [True, False]),
        make_instances(SIZE, [[20, 16, 100, 88]], ["cat"], [False], [True]),
    ])
    alp_only = make_batch([
        make_instances(SIZE, [[10, 10, 60, 70]], ["dolphin"], [True], [False]),
        make_instances(SIZE, [[30, 30, 90, 80]], ["small white dog"], [True], [False]),
    ])
    opt = torch.optim.SGD(model.parameters(), lr=0.001)
    with EventStorage():
        for batch in (mixed, alp_only):  # two iterations, as the two datasets alternate
            losses = model(batch)
            assert all(torch.isfinite(v) for v in losses.values()), losses
            assert ("loss_mask" in losses) == cfg.MODEL.MASK_ON
            assert ("loss_centerness" in losses) == cfg.MODEL.FCOS_MO.CENTERNESS
            opt.zero_grad()
            sum(losses.values()).backward()
            opt.step()
    assert losses["loss_box_reg"].item() == 0.0  # the ALP-only batch
    model.eval()
    out = model(make_batch([make_instances(SIZE, [], [], [], [])]))[0]["instances"]
    assert len(out) <= cfg.MODEL.FCOS_MO.DETECTIONS_PER_IMAGE
    assert out.has("pred_masks") == cfg.MODEL.MASK_ON


@pytest.mark.parametrize("path", TABLE2_CONFIGS, ids=lambda p: os.path.relpath(p, REPO))
def test_table2_config_is_closed_vocabulary_fcos_and_trains_2_iterations(path):
    """Table 2 rows: detectron2's FCOS classifier (80 sigmoids, focal loss), plus the mask head from row 2."""
    from detectron2.modeling.meta_arch.fcos import FCOSHead

    from alpseg.modeling.meta_arch import FCOSMask
    from alpseg.modeling.meta_arch import FCOSMO

    cfg = load_config(path, tiny_overrides())
    torch.manual_seed(0)
    model = build_model(cfg)
    assert type(model) is FCOSMask and not isinstance(model, FCOSMO)
    assert type(model.head) is FCOSHead and model.head.cls_score.out_channels == 80 == model.num_classes
    torch.testing.assert_close(model.head.cls_score.bias, torch.full((80,), math.log(0.01 / 0.99)))
    assert (model.focal_loss_alpha, model.focal_loss_gamma) == (0.25, 2.0)
    assert (model.mask_head is not None) == cfg.MODEL.MASK_ON
    batches = [make_batch([make_instances(SIZE, [[10, 10, 60, 70], [70, 20, 120, 90]], ["dog", "cat"], [False, False],
                                          [True, True]),
                           make_instances(SIZE, [[20, 16, 100, 88]], ["person"], [False], [True])], seed=s)
               for s in (0, 1)]
    for batch, classes in zip(batches, ([[17, 16], [1]], [[79, 0], [5]])):
        for x, c in zip(batch, classes):
            x["instances"].gt_classes = torch.tensor(c)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.001)
    with EventStorage():
        for batch in batches:  # two iterations
            losses = model(batch)
            assert set(losses) == {"loss_fcos_cls", "loss_fcos_loc", "loss_fcos_ctr"} | (
                {"loss_mask"} if cfg.MODEL.MASK_ON else set())
            assert all(torch.isfinite(v) and v > 0 for v in losses.values()), losses
            opt.zero_grad()
            sum(losses.values()).backward()
            opt.step()
        # detectron2's loss normaliser (EMA of positives, from 300) is a checkpointed buffer, so --resume
        # continues it instead of restarting at 300
        ema = model.state_dict()["ema_state_loss_normalizer"]
        assert ema.dtype == torch.float64 and 1 <= float(ema) < 300
        fresh = build_model(cfg)
        fresh.load_state_dict(model.state_dict())
        assert float(fresh.state_dict()["ema_state_loss_normalizer"]) == float(ema)
        alp = make_batch([make_instances(SIZE, [[10, 10, 60, 70]], ["dolphin"], [True], [False])] * 2)
        for x in alp:
            x["instances"].gt_classes = torch.tensor([-1])
        with pytest.raises(ValueError, match="closed-vocabulary"):
            model(alp)
        for x in alp:
            x["instances"].gt_is_alp[:] = False
            x["instances"].gt_classes = torch.tensor([80])
        with pytest.raises(ValueError, match="NUM_CLASSES"):
            model(alp)
    model.eval()
    out = model(make_batch([make_instances(SIZE, [], [], [], [])]))[0]["instances"]
    assert out.has("pred_masks") == cfg.MODEL.MASK_ON and len(out) and int(out.pred_classes.max()) < 80


def test_fcos_mask_focal_loss_is_detectron2_fcos_loss():
    """FCOSMask without mask head gives detectron2's own FCOS losses on the same modules and batch
    (the configured size ranges 64/128/256/512 are detectron2's 4 and 8 strides)."""
    from detectron2.modeling.meta_arch.fcos import FCOS

    cfg = load_config(os.path.join(REPO, "configs", "fcos_reimpl", "fcos_R_50_FPN_1x.yaml"), tiny_overrides())
    torch.manual_seed(0)
    model = build_model(cfg).train()
    batch = make_batch([make_instances(SIZE, [[10, 10, 60, 70]], ["dog"], [False], [False])] * 2)
    for x in batch:
        x["instances"].gt_classes = torch.tensor([16])
    reference = FCOS(backbone=model.backbone, head=model.head, head_in_features=model.head_in_features,
                     num_classes=80, pixel_mean=cfg.MODEL.PIXEL_MEAN, pixel_std=cfg.MODEL.PIXEL_STD).train()
    with EventStorage():
        ours = model(batch)
        theirs = reference(batch)
    assert ours.keys() == theirs.keys()
    for k in ours:
        torch.testing.assert_close(ours[k], theirs[k])
