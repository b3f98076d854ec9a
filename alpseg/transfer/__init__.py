"""Downstream transfer evaluation of pretrained ResNet backbones (SPEC section 10).

``checkpoints`` reads and converts checkpoints; ``voc07_svm``, ``linear_probe``, ``inat`` and
``finetune`` implement the protocols; ``suite`` runs a chosen set of tasks and writes the table.
Importing the package registers the C4 ROI heads with an extra norm after res5.
"""
from . import roi_heads  # noqa: F401  (registers Res5ROIHeadsExtraNorm)
