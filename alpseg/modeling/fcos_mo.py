"""Deprecated path, kept for one release: FCOS-MO lives in ``alpseg.modeling.meta_arch.fcos_mo``,
its backbone builder in ``alpseg.modeling.backbone.fcos_resnet_fpn``; this module re-exports them."""
from .backbone.fcos_resnet_fpn import build_fcos_resnet_fpn_backbone
from .meta_arch.fcos_mo import FCOSMO, FCOSMOHead

__all__ = ["FCOSMO", "FCOSMOHead", "build_fcos_resnet_fpn_backbone"]
