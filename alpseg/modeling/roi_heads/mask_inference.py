"""Mask prediction for final detections, once per distinct box.

Both detectors score every box against every phrase of the vocabulary and run *class-specific* NMS,
so one box often survives several times with different phrases: FCOS-MO keeps (location, class)
pairs that share their location's box; Mask R-CNN* regresses class-agnostic deltas, so the classes
of one proposal share its box. A class-agnostic mask head gives those detections the same mask.
On the demo's trained FCOS-MO + ALPs model, the 97.7 detections kept per image (score >= 0.05, 40
validation images) hold only 27.6 distinct boxes, so pooling and running the mask head once per
distinct box does 3.5x less work for the same masks (docs/benchmarks.md).
"""
from __future__ import annotations

from typing import List, Tuple

import torch
from torch import Tensor, nn

from detectron2.modeling.roi_heads.mask_head import mask_rcnn_inference
from detectron2.structures import Boxes, Instances

__all__ = ["distinct_boxes", "predict_masks"]


def distinct_boxes(boxes: List[Boxes]) -> Tuple[List[Boxes], Tensor]:
    """The distinct boxes of each image and, for every input box (images concatenated in order), the
    row of its distinct box in the concatenation of the returned lists."""
    distinct, inverse, offset = [], [], 0
    for b in boxes:
        if len(b) == 0:
            distinct.append(b)
            continue
        rows, index = torch.unique(b.tensor, dim=0, return_inverse=True)
        distinct.append(Boxes(rows))
        inverse.append(index + offset)
        offset += len(rows)
    if not inverse:
        return distinct, torch.zeros(0, dtype=torch.long, device=boxes[0].device if boxes else "cpu")
    return distinct, torch.cat(inverse)


def predict_masks(pooler: nn.Module, head: nn.Module, features: List[Tensor], results: List[Instances]) -> List[Instances]:
    """Set ``pred_masks`` (probabilities, ``(R, 1, M, M)`` or class-selected) on each image's detections.

    ``head`` is a detectron2 mask head (its ``layers`` gives logits); the RoIs of all images go
    through it in one call, one RoI per distinct box. While tracing for export, every detection keeps
    its own RoI (the exported graph has no data-dependent ``unique``). For a single image with a
    class-agnostic head the probabilities are assigned directly: detectron2's ``mask_rcnn_inference``
    splits the batch by per-image counts, which tracing would freeze into an exported graph.
    """
    boxes = [r.pred_boxes for r in results]
    if torch.jit.is_tracing():
        logits = head.layers(pooler(features, boxes))
    else:
        distinct, inverse = distinct_boxes(boxes)
        logits = head.layers(pooler(features, distinct))[inverse]
    if len(results) == 1 and logits.shape[1] == 1:
        results[0].pred_masks = logits.sigmoid()
    else:
        mask_rcnn_inference(logits, results)
    return results
