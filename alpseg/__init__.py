"""alpseg: instance segmentation with approximately localized phrases, on Detectron2.

Importing the package registers every alpseg component with detectron2's registries
(``META_ARCH_REGISTRY``: ``FCOSMO``, ``MaskRCNNStar``; ``ROI_MASK_HEAD_REGISTRY``:
``HourglassMaskHead``; ``ROI_HEADS_REGISTRY``: the transfer suite's C4 heads with an extra norm after res5)
and every alpseg dataset name with ``DatasetCatalog`` (lazily).
"""
from . import data, modeling, transfer  # noqa: F401  (registration side effects)
from .config import add_alpseg_config, get_cfg, load_config  # noqa: F401

__version__ = "0.1.0"
