"""Every shipped FCOS-MO config loads, builds (tiny backbone) and trains / infers on hand-made batches."""
import glob
import os

import pytest
import torch

from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

from alpseg.config import load_config
from fcos_mo_batches import make_batch, make_instances, tiny_overrides

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = sorted(
    glob.glob(os.path.join(REPO, "configs", "fcos_mo_*.yaml"))
    + glob.glob(os.path.join(REPO, "configs", "ablations", "fcos_mo_*.yaml"))
    + glob.glob(os.path.join(REPO, "configs", "fcos_reimpl", "*.yaml"))
    + [os.path.join(REPO, "configs", "Base-FCOS-MO.yaml")]
)
SIZE = (160, 224)  # P7 of 2x2: GroupNorm(32, 32) of the Table 2 towers needs more than one value


def test_all_configs_are_collected():
    names = {os.path.relpath(c, REPO) for c in CONFIGS}
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
