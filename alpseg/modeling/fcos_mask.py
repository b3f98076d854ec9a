"""Deprecated path, kept for one release: FCOSMask lives in ``alpseg.modeling.meta_arch.fcos_mask``."""
from .meta_arch.fcos_mask import FCOSMask, dense_detector_kwargs, dense_head_norm

__all__ = ["FCOSMask", "dense_detector_kwargs", "dense_head_norm"]
