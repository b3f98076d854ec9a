"""Models: importing this package registers them with detectron2's registries.

``META_ARCH_REGISTRY``: ``FCOSMO``, ``MaskRCNNStar``; ``ROI_MASK_HEAD_REGISTRY``: ``HourglassMaskHead``;
plus the ROI heads of Mask R-CNN* and FCOS-MO's backbone builder.
"""
from . import fcos_mo, hourglass, mask_rcnn_star  # noqa: F401
