"""The per-instance supervision flags (docs/architecture.md, instance fields), read the same way by every model.

Every alpseg mapper sets ``gt_is_alp`` and ``gt_has_mask`` on each training instance. Instances that
come from elsewhere (plain detectron2 data, hand-made test batches) may lack them; the defaults are
defined once, here:

* ``gt_is_alp`` absent: no instance is an ALP;
* ``gt_has_mask`` absent: every instance has a mask exactly when the image carries ``gt_masks``
  (detectron2's own convention: ``gt_masks``, when present, has one mask per instance).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from detectron2.structures import Instances

__all__ = ["gt_has_mask", "gt_is_alp"]


def _flag(inst: Instances, name: str, default: bool, device: Optional[torch.device]) -> Tensor:
    if inst.has(name):
        value = inst.get(name)
        return value.to(device=device or value.device, dtype=torch.bool)
    if device is None:
        device = inst.gt_boxes.device if inst.has("gt_boxes") else torch.device("cpu")
    return torch.full((len(inst),), default, dtype=torch.bool, device=device)


def gt_is_alp(inst: Instances, device: Optional[torch.device] = None) -> Tensor:
    """``(N,)`` bool: which instances are ALPs (no GIoU, no mask loss); all False when unset."""
    return _flag(inst, "gt_is_alp", False, device)


def gt_has_mask(inst: Instances, device: Optional[torch.device] = None) -> Tensor:
    """``(N,)`` bool: which instances train the mask head; when unset, whether ``gt_masks`` exists."""
    return _flag(inst, "gt_has_mask", inst.has("gt_masks"), device)
