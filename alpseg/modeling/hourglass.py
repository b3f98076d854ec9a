"""Deprecated path, kept for one release: the Hourglass mask head lives in ``alpseg.modeling.roi_heads.hourglass``."""
from .roi_heads.hourglass import HourglassMaskHead, ResidualBlock, hourglass_stage_blocks, select_mask_instances

__all__ = ["HourglassMaskHead", "ResidualBlock", "hourglass_stage_blocks", "select_mask_instances"]
