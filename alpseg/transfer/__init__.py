"""Downstream transfer evaluation of pretrained ResNet backbones (docs/transfer.md).

``checkpoints`` reads and converts checkpoints; ``voc07_svm``, ``linear_probe``, ``inat`` and
``finetune`` implement the protocols; ``tasks`` registers them as task dataclasses, ``runner`` runs a
chosen set with per-task resumption and ``table`` writes the results beside the published rows
(``suite`` re-exports all three). Importing the package registers the C4 ROI heads with an extra
norm after res5 (``roi_heads``).
"""
from . import roi_heads  # noqa: F401  (registers Res5ROIHeadsExtraNorm)
