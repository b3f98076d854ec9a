"""ROI heads (``ROI_HEADS_REGISTRY``), box predictor and mask heads (``ROI_MASK_HEAD_REGISTRY``)."""
from .hourglass import HourglassMaskHead
from .mask_rcnn_star_roi_heads import MaskRCNNStarROIHeads, image_label_loss, largest_box_index
from .open_vocab_fast_rcnn import OpenVocabFastRCNNOutputLayers, calibrated_scores

__all__ = [
    "HourglassMaskHead",
    "MaskRCNNStarROIHeads",
    "OpenVocabFastRCNNOutputLayers",
    "calibrated_scores",
    "image_label_loss",
    "largest_box_index",
]
