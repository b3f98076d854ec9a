"""The C4 ROI heads of the MoCo / VirTex / LocTex detection transfer: a norm layer after res5.

With a C4 backbone the res5 stage lives in the ROI heads. Backbones pretrained with BN-free heads
or other feature statistics transfer better when one extra normalisation layer (of
``MODEL.RESNETS.NORM``, i.e. SyncBN in the transfer configs) follows res5 (He et al., MoCo, sec. 4.2;
LocTex sec. 4.2). The layer is new: it is not part of the pretrained backbone and starts at its
default initialisation.
"""
from __future__ import annotations

from detectron2.layers import get_norm
from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, Res5ROIHeads

__all__ = ["Res5ROIHeadsExtraNorm"]


@ROI_HEADS_REGISTRY.register()
class Res5ROIHeadsExtraNorm(Res5ROIHeads):
    """``Res5ROIHeads`` whose res5 block ends with ``get_norm(MODEL.RESNETS.NORM)``."""

    @classmethod
    def _build_res5_block(cls, cfg):
        blocks, out_channels = super()._build_res5_block(cfg)
        blocks.add_module("norm", get_norm(cfg.MODEL.RESNETS.NORM, out_channels))
        return blocks, out_channels
