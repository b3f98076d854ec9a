"""detectron2 ResNet trunks built from converted weights, for the classification transfer tasks.

The frozen-feature tasks (VOC07 SVM, ImageNet linear probe) and the classification fine-tuning
task (iNat18) run detectron2's own ``ResNet`` with the weights from
:mod:`alpseg.transfer.checkpoints`, so every task exercises the same conversion that the
detectron2 fine-tuning tasks load, and a backbone file already in detectron2 names works too.
torchvision-style backbones put the stride in the 3x3 conv, hence ``STRIDE_IN_1X1 = False``.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling.backbone.resnet import ResNet, build_resnet_backbone
from torch import nn

from .checkpoints import BackboneLoadError

__all__ = ["ARCH_DEPTHS", "PooledResNet", "build_resnet_trunk"]

#: torchvision architecture name -> detectron2 ``MODEL.RESNETS.DEPTH``.
ARCH_DEPTHS = {"resnet50": 50, "resnet101": 101, "resnet152": 152}


def build_resnet_trunk(
    weights: Mapping[str, torch.Tensor],
    arch: str = "resnet50",
    norm: str = "FrozenBN",
    out_features: Sequence[str] = ("res5",),
) -> ResNet:
    """detectron2 ResNet (torchvision stride placement) holding exactly ``weights``.

    Every trunk tensor must be present; the only keys allowed to stay at their initial value are
    BatchNorm step counters, which carry no weights.
    """
    if arch not in ARCH_DEPTHS:
        raise ValueError(f"unsupported architecture {arch!r}; one of {sorted(ARCH_DEPTHS)}")
    cfg = get_cfg()
    cfg.MODEL.RESNETS.DEPTH = ARCH_DEPTHS[arch]
    cfg.MODEL.RESNETS.NORM = norm
    cfg.MODEL.RESNETS.STRIDE_IN_1X1 = False
    cfg.MODEL.RESNETS.OUT_FEATURES = list(out_features)
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    model = build_resnet_backbone(cfg, ShapeSpec(channels=3))
    result = model.load_state_dict(dict(weights), strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise BackboneLoadError(
            f"weights do not fit a detectron2 {arch}: missing {missing}, unexpected {result.unexpected_keys}"
        )
    return model


class PooledResNet(nn.Module):
    """Trunk followed by global average pooling of its last stage: (N, 3, H, W) -> (N, C)."""

    def __init__(self, trunk: ResNet, feature: str = "res5"):
        super().__init__()
        self.trunk = trunk
        self.feature = feature
        self.out_channels = trunk.output_shape()[feature].channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.trunk(images)[self.feature].mean(dim=(2, 3))
