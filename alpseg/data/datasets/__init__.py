"""alpseg dataset registrations (lazy), rooted at ``$DETECTRON2_DATASETS`` like detectron2's builtins.

Importing this package registers the names of :data:`ALPSEG_DATASETS` with ``DatasetCatalog`` and
``MetadataCatalog``; nothing is read from disk until a dataset or its class lists are used.
"""
import os

from .builtin import ALPSEG_DATASETS, ALPSEG_MERGED_DATASETS, register_all_alpseg

__all__ = ["ALPSEG_DATASETS", "ALPSEG_MERGED_DATASETS", "register_all_alpseg", "DATASETS_ROOT"]

#: the root every registered path is under (read once, at import, as detectron2 does)
DATASETS_ROOT = os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))
register_all_alpseg(DATASETS_ROOT)
