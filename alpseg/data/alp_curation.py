"""Deprecated import path: ALP curation now lives in :mod:`alpseg.data.curation` (one module per concept).

Kept for one release so existing imports keep working; import from ``alpseg.data.curation`` instead.
"""
from .curation import *  # noqa: F401,F403
from .curation import __all__  # noqa: F401
from .curation.config import PICTURE_WORDS_FILE, PLURALIA_TANTUM_FILE, RESOURCES, STUFF_CLASSES_FILE  # noqa: F401
