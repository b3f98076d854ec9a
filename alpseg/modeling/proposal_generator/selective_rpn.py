"""``SelectiveRPN``: detectron2's RPN whose losses can leave whole images out (Mask R-CNN*'s ALP modes)."""
from __future__ import annotations

from typing import Dict, List, Optional

import torch
from torch import Tensor

from detectron2.modeling import PROPOSAL_GENERATOR_REGISTRY
from detectron2.modeling.proposal_generator import RPN
from detectron2.structures import ImageList

__all__ = ["SelectiveRPN"]


@PROPOSAL_GENERATOR_REGISTRY.register()
class SelectiveRPN(RPN):
    """detectron2's RPN whose losses can leave whole images out.

    ``forward(images, features, gt_instances, supervised=[...])``: images whose flag is False still
    get proposals (the image-label loss needs them), but all their anchors are ignored in the losses,
    and the loss is normalized by the number of supervised images, so a supervised image weighs the
    same whatever the rest of the batch holds. Without ``supervised`` it is exactly detectron2's RPN.
    """

    _supervised: Optional[List[bool]] = None

    def forward(self, images: ImageList, features: Dict[str, Tensor], gt_instances=None, supervised=None):
        if supervised is not None and len(supervised) != len(images):
            raise ValueError(f"{len(supervised)} supervision flags for {len(images)} images")
        self._supervised = None if supervised is None else [bool(s) for s in supervised]
        try:
            return super().forward(images, features, gt_instances)
        finally:
            self._supervised = None

    @torch.no_grad()
    def label_and_sample_anchors(self, anchors, gt_instances):
        if self._supervised is None:
            return super().label_and_sample_anchors(anchors, gt_instances)
        # Match and sample the supervised images only (left-out images cost nothing and draw no
        # random numbers); every anchor of a left-out image is ignored (-1).
        chosen = [g for g, keep in zip(gt_instances, self._supervised) if keep]
        labels, boxes = super().label_and_sample_anchors(anchors, chosen) if chosen else ([], [])
        labels, boxes = iter(labels), iter(boxes)
        num_anchors = sum(len(a) for a in anchors)
        device = anchors[0].tensor.device
        gt_labels, matched_gt_boxes = [], []
        for keep in self._supervised:
            if keep:
                gt_labels.append(next(labels))
                matched_gt_boxes.append(next(boxes))
            else:
                gt_labels.append(torch.full((num_anchors,), -1, dtype=torch.int8, device=device))
                matched_gt_boxes.append(torch.zeros((num_anchors, 4), device=device))
        return gt_labels, matched_gt_boxes

    def losses(self, anchors, pred_objectness_logits, gt_labels, pred_anchor_deltas, gt_boxes):
        losses = super().losses(anchors, pred_objectness_logits, gt_labels, pred_anchor_deltas, gt_boxes)
        if self._supervised is not None:
            # detectron2 divides by batch_size_per_image * #images; count supervised images only.
            scale = len(self._supervised) / max(sum(self._supervised), 1)
            losses = {k: v * scale for k, v in losses.items()}
        return losses
