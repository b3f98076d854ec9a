"""Meta-architectures registered in detectron2's ``META_ARCH_REGISTRY``."""
from .fcos_mask import FCOSMask
from .fcos_mo import FCOSMO
from .mask_rcnn_star import ALP_SUPERVISION_MODES, MaskRCNNStar

__all__ = ["ALP_SUPERVISION_MODES", "FCOSMO", "FCOSMask", "MaskRCNNStar"]
