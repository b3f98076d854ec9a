"""Backbone builders registered in detectron2's ``BACKBONE_REGISTRY``."""
from .fcos_resnet_fpn import build_fcos_resnet_fpn_backbone

__all__ = ["build_fcos_resnet_fpn_backbone"]
