"""Deprecated path, kept for one release: Mask R-CNN* is split over ``meta_arch.mask_rcnn_star``
(``MaskRCNNStar``), ``roi_heads.mask_rcnn_star_roi_heads``, ``roi_heads.open_vocab_fast_rcnn`` and
``proposal_generator.selective_rpn``; this module re-exports their names."""
from .meta_arch.mask_rcnn_star import ALP_SUPERVISION_MODES, MaskRCNNStar
from .proposal_generator.selective_rpn import SelectiveRPN
from .roi_heads.mask_rcnn_star_roi_heads import MaskRCNNStarROIHeads, image_label_loss, largest_box_index
from .roi_heads.open_vocab_fast_rcnn import OpenVocabFastRCNNOutputLayers, calibrated_scores

__all__ = [
    "ALP_SUPERVISION_MODES",
    "MaskRCNNStar",
    "MaskRCNNStarROIHeads",
    "OpenVocabFastRCNNOutputLayers",
    "SelectiveRPN",
    "calibrated_scores",
    "image_label_loss",
    "largest_box_index",
]
