"""Hourglass mask head (Deep-MARC, Birodkar et al. 2021), registered as ``HourglassMaskHead``.

Deep-MARC showed that a deep encoder-decoder mask head trained on ground-truth boxes segments classes
it never saw masks for far better than the 4-conv head of Mask R-CNN. FCOS-MO and Mask R-CNN* use its
Hourglass-20 variant.

Layout (``D = MODEL.ROI_MASK_HEAD.HOURGLASS_DEPTH``, ``W = HOURGLASS_WIDTH``, input ``S x S``, S = 16
in the paper)::

    S x S     enc0:  blocks (the first projects C -> W through a 1x1 shortcut)  --------- skip --+
    S/2       enc1:  blocks, the first with stride 2                            -- skip --+      |
    S/4       center: blocks, the first with stride 2                                     |      |
    S/2       nearest 2x upsample + enc1 output, dec1: blocks  <-------------------------+      |
    S x S     nearest 2x upsample + enc0 output, dec0: blocks  <--------------------------------+
    2S x 2S   2x2 stride-2 ConvTranspose + ReLU, then a 1x1 predictor -> 1 channel (class-agnostic)

Every block is a basic residual block (two 3x3 convs, norm, ReLU). ``D`` counts the 3x3 convs on
the main path, i.e. ``D / 2`` blocks spread over the five stages (extra blocks go to the deepest
stages first). Like detectron2's ``NUM_CONV`` of the 4-conv head, the count excludes the upsampling
deconv, the predictor, and the 1x1 projection shortcuts. ``D = 20`` gives two blocks per stage.
A 16x16 RoI gives 32x32 mask logits, a 14x14 RoI gives 28x28 (S must be divisible by 4).

Training uses only instances whose ``gt_has_mask`` is True (ALP and box-only instances have no mask);
their features are removed *before* the layers run, so they get no gradient.
"""
from __future__ import annotations

from typing import List

import fvcore.nn.weight_init as weight_init
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from detectron2.config import configurable
from detectron2.layers import Conv2d, ConvTranspose2d, ShapeSpec, get_norm
from detectron2.modeling.roi_heads.mask_head import (
    ROI_MASK_HEAD_REGISTRY,
    BaseMaskRCNNHead,
    mask_rcnn_inference,
    mask_rcnn_loss,
)
from detectron2.structures import Instances

from ..instance_fields import gt_has_mask

__all__ = ["HourglassMaskHead", "ResidualBlock", "hourglass_stage_blocks", "select_mask_instances"]

NUM_STAGES = 5  # enc0, enc1, center, dec1, dec0
# The head runs even on a batch without any masked instance (see ``forward``). torch's SyncBatchNorm
# cannot do that under detectron2's ``Conv2d`` (it asserts on empty inputs); detectron2's
# NaiveSyncBatchNorm in "N" mode can (it weights each process's statistics by its pixel count, so
# an empty process takes part in the all-reduce with weight 0). "SyncBN" therefore means that one here.
_EMPTY_SAFE_NORMS = {"SyncBN": "naiveSyncBN_N", "nnSyncBN": "naiveSyncBN_N"}
# Order in which stages receive extra blocks when D / 2 is not a multiple of 5: deepest first.
_EXTRA_BLOCK_ORDER = (2, 1, 3, 0, 4)


def hourglass_stage_blocks(depth: int) -> List[int]:
    """Residual blocks per stage (enc0, enc1, center, dec1, dec0) for a main path of ``depth`` convs."""
    if depth % 2 or depth < 2 * NUM_STAGES:
        raise ValueError(
            f"HOURGLASS_DEPTH must be even and >= {2 * NUM_STAGES} (two convs per residual block, "
            f"at least one block in each of the {NUM_STAGES} stages); got {depth}"
        )
    num_blocks = depth // 2
    blocks = [num_blocks // NUM_STAGES] * NUM_STAGES
    for i in range(num_blocks % NUM_STAGES):
        blocks[_EXTRA_BLOCK_ORDER[i]] += 1
    return blocks


class ResidualBlock(nn.Module):
    """Basic residual block: conv3x3-norm-ReLU, conv3x3-norm, + shortcut, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, norm: str = ""):
        super().__init__()
        self.conv1 = Conv2d(
            in_channels, out_channels, 3, stride=stride, padding=1, bias=not norm,
            norm=get_norm(norm, out_channels), activation=F.relu,
        )
        self.conv2 = Conv2d(
            out_channels, out_channels, 3, padding=1, bias=not norm, norm=get_norm(norm, out_channels)
        )
        if stride != 1 or in_channels != out_channels:
            self.shortcut = Conv2d(
                in_channels, out_channels, 1, stride=stride, bias=not norm,
                norm=get_norm(norm, out_channels),
            )
        else:
            self.shortcut = None
        for layer in (self.conv1, self.conv2, self.shortcut):
            if layer is not None:
                weight_init.c2_msra_fill(layer)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        return F.relu(self.conv2(self.conv1(x)) + identity)

    def main_path_convs(self) -> List[nn.Module]:
        return [self.conv1, self.conv2]


def _stage(in_channels: int, width: int, num_blocks: int, stride: int, norm: str) -> nn.Sequential:
    blocks = [ResidualBlock(in_channels, width, stride=stride, norm=norm)]
    blocks += [ResidualBlock(width, width, norm=norm) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)


def select_mask_instances(instances: List[Instances]) -> List[Instances]:
    """Keep, per image, the instances that have a ground-truth mask (:func:`gt_has_mask`)."""
    return [inst[gt_has_mask(inst)] for inst in instances]


@ROI_MASK_HEAD_REGISTRY.register()
class HourglassMaskHead(BaseMaskRCNNHead):
    """Class-agnostic Hourglass mask head; see the module docstring for the layout."""

    @configurable
    def __init__(self, input_shape: ShapeSpec, *, depth: int = 20, width: int = 128, norm: str = "", **kwargs):
        """
        Args:
            input_shape: shape of the RoI features (channels; height/width are not needed).
            depth: 3x3 convs on the main path (even, >= 10).
            width: channels inside the hourglass.
            norm: normalization of every conv (``detectron2.layers.get_norm`` names; "SyncBN" in
                the paper's configs, built as detectron2's empty-safe "naiveSyncBN_N").
            kwargs: ``loss_weight``, ``vis_period`` of :class:`BaseMaskRCNNHead`.
        """
        super().__init__(**kwargs)
        norm = _EMPTY_SAFE_NORMS.get(norm, norm) if isinstance(norm, str) else norm
        self.depth = int(depth)
        n_enc0, n_enc1, n_center, n_dec1, n_dec0 = hourglass_stage_blocks(self.depth)
        self.enc0 = _stage(input_shape.channels, width, n_enc0, 1, norm)
        self.enc1 = _stage(width, width, n_enc1, 2, norm)
        self.center = _stage(width, width, n_center, 2, norm)
        self.dec1 = _stage(width, width, n_dec1, 1, norm)
        self.dec0 = _stage(width, width, n_dec0, 1, norm)
        self.deconv = ConvTranspose2d(width, width, kernel_size=2, stride=2)
        weight_init.c2_msra_fill(self.deconv)
        self.predictor = Conv2d(width, 1, kernel_size=1)
        nn.init.normal_(self.predictor.weight, std=0.001)
        nn.init.constant_(self.predictor.bias, 0.0)

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        head = cfg.MODEL.ROI_MASK_HEAD
        if not head.CLS_AGNOSTIC_MASK:
            # The head is class-agnostic by design (novel classes have no mask channel).
            raise ValueError("HourglassMaskHead is class-agnostic: set MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK True")
        ret.update(
            input_shape=input_shape,
            depth=head.HOURGLASS_DEPTH,
            width=head.HOURGLASS_WIDTH,
            norm=head.NORM,
        )
        return ret

    def main_path_convs(self) -> List[nn.Module]:
        """The 3x3 convs that ``depth`` counts, in forward order."""
        stages = (self.enc0, self.enc1, self.center, self.dec1, self.dec0)
        return [conv for stage in stages for block in stage for conv in block.main_path_convs()]

    def layers(self, x: Tensor) -> Tensor:
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"HourglassMaskHead needs RoI sizes divisible by 4, got {tuple(x.shape[-2:])}")
        if not self.training and x.device.type == "cpu":
            # channels-last activations take oneDNN's faster NHWC convolutions on a CPU (0.79-0.85x of
            # the time at 100 RoIs; outputs equal up to 3e-6). Training keeps torch's default layout.
            x = x.contiguous(memory_format=torch.channels_last)
        skip0 = self.enc0(x)
        skip1 = self.enc1(skip0)
        y = self.center(skip1)
        y = self.dec1(F.interpolate(y, scale_factor=2.0, mode="nearest") + skip1)
        y = self.dec0(F.interpolate(y, scale_factor=2.0, mode="nearest") + skip0)
        y = F.relu(self.deconv(y))
        return self.predictor(y)

    def forward(self, x: Tensor, instances: List[Instances]):
        """Training: ``{"loss_mask": BCE}`` over instances with ``gt_has_mask``; test: sets ``pred_masks``.

        In training ``x`` holds one feature per instance of ``instances`` (concatenated over images,
        boxes in ``proposal_boxes``). Rows without a mask are dropped before the layers run. When no
        row is left the layers still run on an empty batch, so that every process of a distributed
        job takes part in the same SyncBN collectives and every parameter is in the graph; the loss
        is then an exact zero with zero gradients.
        """
        if not self.training:
            logits = self.layers(x)
            if len(instances) == 1:
                # one image: no per-image split, whose sizes tracing would freeze into an exported graph
                instances[0].pred_masks = logits.sigmoid()
            else:
                mask_rcnn_inference(logits, instances)
            return instances
        keep = torch.cat([gt_has_mask(inst, x.device) for inst in instances]) if instances else None
        if keep is not None:
            if keep.numel() != x.shape[0]:
                raise ValueError(f"{x.shape[0]} RoI features for {keep.numel()} instances")
            x = x[keep]
            instances = select_mask_instances(instances)
        logits = self.layers(x)
        if logits.shape[0] == 0:
            return {"loss_mask": logits.sum() * 0.0}
        return {"loss_mask": mask_rcnn_loss(logits, instances, self.vis_period) * self.loss_weight}
