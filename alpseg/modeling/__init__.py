"""Models: importing this package registers them with detectron2's registries.

``META_ARCH_REGISTRY``: ``FCOSMO``, ``FCOSMask`` (closed-vocabulary FCOS of Table 2), ``MaskRCNNStar``; ``ROI_MASK_HEAD_REGISTRY``: ``HourglassMaskHead``;
plus the ROI heads of Mask R-CNN* and FCOS-MO's backbone builder.
"""
from . import fcos_mask, fcos_mo, hourglass, instance_fields, mask_rcnn_star  # noqa: F401
