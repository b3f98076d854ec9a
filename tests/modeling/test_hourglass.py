"""HourglassMaskHead: depth, shapes, and that mask-less instances give no gradient."""
import pytest
import torch

from detectron2.layers import ShapeSpec
from detectron2.modeling.roi_heads.mask_head import ROI_MASK_HEAD_REGISTRY
from detectron2.structures import BitMasks, Boxes, Instances
from detectron2.utils.events import EventStorage

from alpseg.config import get_cfg
from alpseg.modeling.roi_heads.hourglass import HourglassMaskHead, hourglass_stage_blocks


def _cfg(depth=20, width=8, norm="BN"):
    cfg = get_cfg()
    cfg.MODEL.ROI_MASK_HEAD.NAME = "HourglassMaskHead"
    cfg.MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK = True
    cfg.MODEL.ROI_MASK_HEAD.HOURGLASS_DEPTH = depth
    cfg.MODEL.ROI_MASK_HEAD.HOURGLASS_WIDTH = width
    cfg.MODEL.ROI_MASK_HEAD.NORM = norm
    return cfg


def _count_convs(module):
    return sum(isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) for m in module.modules())


def test_hourglass20_main_path_and_shapes():
    head = ROI_MASK_HEAD_REGISTRY.get("HourglassMaskHead")(_cfg(), ShapeSpec(channels=16))
    convs = head.main_path_convs()
    assert len(convs) == 20
    assert all(c.kernel_size == (3, 3) for c in convs)
    # Other convs: 1x1 shortcuts (channel change in enc0, stride 2 in enc1 and center), deconv, predictor.
    assert _count_convs(head) == 20 + 3 + 2
    head.eval()
    x = torch.randn(3, 16, 16, 16)
    assert head.layers(x).shape == (3, 1, 32, 32)
    # Two 2x downsamplings: the center runs at 4x4.
    assert head.center(head.enc1(head.enc0(x))).shape[-1] == 4


def test_stage_split_and_bad_depth():
    assert hourglass_stage_blocks(20) == [2, 2, 2, 2, 2]
    assert hourglass_stage_blocks(10) == [1, 1, 1, 1, 1]
    assert hourglass_stage_blocks(14) == [1, 2, 2, 1, 1]
    assert sum(hourglass_stage_blocks(32)) == 16
    for bad in (9, 8, 21):
        with pytest.raises(ValueError):
            hourglass_stage_blocks(bad)
    cfg = _cfg()
    cfg.MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK = False
    with pytest.raises(ValueError, match="class-agnostic"):
        HourglassMaskHead(cfg, ShapeSpec(channels=4))


def _instances(has_mask):
    n = len(has_mask)
    inst = Instances((32, 32))
    inst.proposal_boxes = Boxes(torch.tensor([[0.0, 0.0, 16.0, 16.0]] * n))
    masks = torch.zeros(n, 32, 32, dtype=torch.bool)
    masks[:, 4:12, 4:12] = True
    inst.gt_masks = BitMasks(masks)
    inst.gt_has_mask = torch.tensor(has_mask, dtype=torch.bool)
    return inst


def test_loss_uses_only_instances_with_masks():
    torch.manual_seed(0)
    head = HourglassMaskHead(_cfg(depth=10, norm=""), ShapeSpec(channels=4))
    head.train()
    x = torch.randn(3, 4, 16, 16)
    with EventStorage():
        loss_all = head(x, [_instances([True, False, True])])["loss_mask"]
        loss_ref = head(x[[0, 2]], [_instances([True, True])])["loss_mask"]
        torch.testing.assert_close(loss_all, loss_ref)

        # No instance with a mask: exact zero, zero gradient everywhere, no gradient to the features.
        x.requires_grad_(True)
        loss = head(x, [_instances([False, False, False])])["loss_mask"]
        assert loss.item() == 0.0
        loss.backward()
        assert all(p.grad is None or torch.all(p.grad == 0) for p in head.parameters())
        assert x.grad is None or torch.all(x.grad == 0)


def test_inference_sets_class_agnostic_masks():
    head = HourglassMaskHead(_cfg(depth=10), ShapeSpec(channels=4)).eval()
    inst = Instances((32, 32), pred_boxes=Boxes(torch.zeros(2, 4)), pred_classes=torch.tensor([3, 7]))
    out = head(torch.randn(2, 4, 16, 16), [inst])[0]
    assert out.pred_masks.shape == (2, 1, 32, 32)
    assert torch.all((out.pred_masks >= 0) & (out.pred_masks <= 1))


def test_width_default_is_the_config_default():
    from alpseg.config import get_cfg
    from alpseg.modeling.roi_heads.hourglass import HourglassMaskHead

    head = HourglassMaskHead(ShapeSpec(channels=4, height=16, width=16), depth=10)
    assert head.predictor.in_channels == get_cfg().MODEL.ROI_MASK_HEAD.HOURGLASS_WIDTH == 128
