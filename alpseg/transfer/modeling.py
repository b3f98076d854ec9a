"""Old name of :mod:`alpseg.transfer.roi_heads` (it looked like ``alpseg.modeling``); re-exported for one
release, to be removed after it."""
import warnings

from .roi_heads import Res5ROIHeadsExtraNorm  # noqa: F401

warnings.warn("alpseg.transfer.modeling is renamed alpseg.transfer.roi_heads", DeprecationWarning, stacklevel=2)
