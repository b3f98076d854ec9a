"""Mask R-CNN*'s ROI heads: open-vocabulary box head, image-label loss, mask head on GT boxes."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

from detectron2.config import configurable
from detectron2.layers import cat
from detectron2.modeling import ROI_HEADS_REGISTRY
from detectron2.modeling.roi_heads import StandardROIHeads
from detectron2.structures import Boxes, ImageList, Instances

from ..instance_fields import gt_has_mask
from .open_vocab_fast_rcnn import OpenVocabFastRCNNOutputLayers
from .mask_inference import predict_masks

__all__ = ["MaskRCNNStarROIHeads", "image_label_loss", "largest_box_index"]


def largest_box_index(boxes: Boxes) -> int:
    """Index of the largest-area box (the first one on ties: RPN proposals are sorted by score)."""
    if len(boxes) == 0:
        raise ValueError("no boxes to choose the largest from")
    return int(torch.argmax(boxes.area()).item())


def image_label_loss(phrase_logits: Tensor, image_phrase_ids: Sequence[Tensor]) -> Tensor:
    """Detic-style image-label loss of the paper's "ALPs without boxes" variant, averaged over images.

    Args:
        phrase_logits: ``(M, K)`` logits of one region per image (the largest proposal) against the
            ``K`` phrases of the batch (by default without the background column; when it is included,
            as the last column, its target is 0 and it only enters the softmax's normalizer).
        image_phrase_ids: ``M`` tensors, the indices of each image's distinct phrases.

    Returns ``mean_i  -sum_k t_ik log softmax(phrase_logits_i)_k`` with ``t_i`` = 1/K_i on the image's
    K_i phrases (a soft cross-entropy; Detic's per-class BCE needs a fixed class list, which free-form
    phrases do not have). 0 when ``M`` is 0.
    """
    if phrase_logits.shape[0] != len(image_phrase_ids):
        raise ValueError(f"{phrase_logits.shape[0]} regions for {len(image_phrase_ids)} images")
    if phrase_logits.shape[0] == 0:
        return phrase_logits.sum() * 0.0
    target = torch.zeros_like(phrase_logits, dtype=torch.float32)
    for i, ids in enumerate(image_phrase_ids):
        ids = torch.unique(ids)
        if ids.numel() == 0:
            raise ValueError(f"image {i} has no phrase for the image-label loss")
        target[i, ids] = 1.0 / ids.numel()
    log_probs = F.log_softmax(phrase_logits.float(), dim=-1)
    return -(target * log_probs).sum() / phrase_logits.shape[0]


@ROI_HEADS_REGISTRY.register()
class MaskRCNNStarROIHeads(StandardROIHeads):
    """Standard FPN ROI heads with the open-vocabulary predictor and a mask head on GT boxes.

    Proposal sampling is class-agnostic (``num_classes`` = 1: label 0 = foreground, 1 = background);
    each sampled proposal also carries the batch-vocabulary index of its matched GT phrase
    (``gt_phrase_ids``). Training inputs (besides detectron2's) are keyword arguments:

    * ``phrase_embeddings``: ``(K, D)`` embeddings of the batch vocabulary;
    * ``box_supervised``: per image, whether it takes part in the box-head losses;
    * ``image_label_ids``: per image, the phrase indices of its image-level labels (empty = none).

    At test time the embeddings are ``test_phrase_embeddings``, set by the meta-architecture.
    """

    @configurable
    def __init__(self, *, image_label_loss_weight: float = 0.1, image_label_background: bool = False, **kwargs):
        kwargs["num_classes"] = 1
        super().__init__(**kwargs)
        self.image_label_loss_weight = float(image_label_loss_weight)
        self.image_label_background = bool(image_label_background)
        self.test_phrase_embeddings: Optional[Tensor] = None

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        ret["image_label_loss_weight"] = cfg.MODEL.MASK_RCNN_STAR.IMAGE_LABEL_LOSS_WEIGHT
        ret["image_label_background"] = cfg.MODEL.MASK_RCNN_STAR.IMAGE_LABEL_BACKGROUND
        return ret

    @classmethod
    def _init_box_head(cls, cfg, input_shape):
        ret = super()._init_box_head(cfg, input_shape)
        ret["box_predictor"] = OpenVocabFastRCNNOutputLayers(cfg, ret["box_head"].output_shape)
        return ret

    @classmethod
    def _init_mask_head(cls, cfg, input_shape):
        if cfg.MODEL.MASK_ON and not cfg.MODEL.ROI_MASK_HEAD.TRAIN_ON_GT_BOXES:
            raise ValueError("Mask R-CNN* trains its mask head on GT boxes: MODEL.ROI_MASK_HEAD.TRAIN_ON_GT_BOXES must be True")
        return super()._init_mask_head(cfg, input_shape)

    def forward(
        self,
        images: ImageList,
        features: Dict[str, Tensor],
        proposals: List[Instances],
        targets: Optional[List[Instances]] = None,
        *,
        phrase_embeddings: Optional[Tensor] = None,
        box_supervised: Optional[Sequence[bool]] = None,
        image_label_ids: Optional[Sequence[Tensor]] = None,
    ):
        if not self.training:
            return super().forward(images, features, proposals, None)
        if targets is None or phrase_embeddings is None:
            raise ValueError("training Mask R-CNN* ROI heads needs targets and phrase_embeddings")
        n = len(proposals)
        box_supervised = [True] * n if box_supervised is None else list(box_supervised)
        image_label_ids = [None] * n if image_label_ids is None else list(image_label_ids)
        if not len(box_supervised) == len(image_label_ids) == len(targets) == n:
            raise ValueError("one target, supervision flag and image-label entry per image is required")

        sup = [i for i in range(n) if box_supervised[i]]
        # Sampling copies every gt_* field to the proposals: leave the masks out of it.
        box_targets = [
            Instances(t.image_size, gt_boxes=t.gt_boxes, gt_classes=t.gt_classes, gt_phrase_ids=t.gt_phrase_ids)
            for t in (targets[i] for i in sup)
        ]
        sampled = self.label_and_sample_proposals([proposals[i] for i in sup], box_targets) if sup else []
        sampled_of = dict(zip(sup, sampled))
        labelled = [i for i in range(n) if image_label_ids[i] is not None and len(image_label_ids[i])]

        # One pass of the box head over each image's sampled RoIs followed by its largest proposal
        # (the pooler takes one box list per image of the batch).
        boxes, is_largest = [], []
        for i in range(n):
            parts = [sampled_of[i].proposal_boxes] if i in sampled_of else []
            if i in labelled:
                parts.append(proposals[i].proposal_boxes[[largest_box_index(proposals[i].proposal_boxes)]])
            b = Boxes.cat(parts) if parts else Boxes(torch.zeros((0, 4), device=proposals[i].proposal_boxes.device))
            boxes.append(b)
            flags = torch.zeros(len(b), dtype=torch.bool, device=b.device)
            if i in labelled:
                flags[-1] = True
            is_largest.append(flags)
        is_largest = cat(is_largest)
        box_features = self.box_head(self.box_pooler([features[f] for f in self.box_in_features], boxes))
        logits, deltas = self.box_predictor(box_features, phrase_embeddings)
        losses = self.box_predictor.losses((logits[~is_largest], deltas[~is_largest]), sampled)
        region_logits = logits[is_largest] if self.image_label_background else logits[is_largest, :-1]
        losses["loss_image_label"] = self.image_label_loss_weight * image_label_loss(
            region_logits, [image_label_ids[i] for i in labelled]
        )
        losses.update(self._mask_losses_on_gt(features, [t if s else t[:0] for t, s in zip(targets, box_supervised)]))
        return sampled, losses

    def _mask_losses_on_gt(self, features: Dict[str, Tensor], targets: List[Instances]) -> Dict[str, Tensor]:
        """Mask loss on the GT boxes of instances with masks (the head runs even on none, see it)."""
        if not self.mask_on:
            return {}
        instances = []
        for t in targets:
            t = t[gt_has_mask(t)] if len(t) else t
            inst = Instances(t.image_size, proposal_boxes=t.gt_boxes)
            if len(t):
                inst.gt_masks = t.gt_masks
            instances.append(inst)
        if self.mask_pooler is None:
            raise ValueError("Mask R-CNN* needs a mask pooler (MODEL.ROI_MASK_HEAD.POOLER_TYPE)")
        x = self.mask_pooler([features[f] for f in self.mask_in_features], [i.proposal_boxes for i in instances])
        return self.mask_head(x, instances)

    def _forward_mask(self, features: Dict[str, Tensor], instances: List[Instances]):
        """Inference: masks of the final detections, one RoI per distinct box (the classes of one
        proposal share its class-agnostic box; :mod:`.mask_inference`). Training never comes here
        (masks train on GT boxes, :meth:`_mask_losses_on_gt`)."""
        if self.training or not self.mask_on or self.mask_pooler is None:
            return super()._forward_mask(features, instances)
        return predict_masks(self.mask_pooler, self.mask_head, [features[f] for f in self.mask_in_features], instances)

    def _forward_box(self, features: Dict[str, Tensor], proposals: List[Instances]):
        """Inference: score proposals against the test vocabulary and run per-class NMS."""
        assert not self.training, "training goes through forward()"
        if self.test_phrase_embeddings is None:
            raise ValueError("no test vocabulary: MaskRCNNStar sets test_phrase_embeddings before inference")
        box_features = self.box_pooler([features[f] for f in self.box_in_features], [p.proposal_boxes for p in proposals])
        predictions = self.box_predictor(self.box_head(box_features), self.test_phrase_embeddings)
        pred_instances, _ = self.box_predictor.inference(predictions, proposals)
        return pred_instances
