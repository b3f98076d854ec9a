"""Mask R-CNN*'s second-stage box predictor: class-agnostic deltas and open-vocabulary logits."""
from __future__ import annotations

from typing import Dict, List, Tuple

import torch
from torch import Tensor
from torch.nn import functional as F

from detectron2.config import configurable
from detectron2.layers import ShapeSpec, cat
from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers, _log_classification_stats
from detectron2.structures import Instances

from ..open_vocab import OpenVocabClassifier, region_phrase_contrastive_loss

__all__ = ["OpenVocabFastRCNNOutputLayers", "calibrated_scores"]


def calibrated_scores(class_probs: Tensor, objectness_logits: Tensor) -> Tensor:
    """Geometric mean of each class probability ``(R, C)`` and its proposal's objectness ``(R,)``."""
    return torch.sqrt(class_probs * torch.sigmoid(objectness_logits.float())[:, None])


class OpenVocabFastRCNNOutputLayers(FastRCNNOutputLayers):
    """Second-stage predictor: class-agnostic box deltas (4 per RoI) and open-vocabulary logits.

    Reuses detectron2's Fast R-CNN box loss, box decoding and per-class NMS; the linear classifier
    is replaced by :class:`OpenVocabClassifier`. ``forward(x, phrase_embeddings)`` returns
    ``(logits (R, K + 1), deltas (R, 4))``, background last. Training labels are the
    ``gt_phrase_ids`` of the sampled proposals (``gt_classes`` 0 = foreground, 1 = background,
    set by :class:`MaskRCNNStarROIHeads`).
    """

    @configurable
    def __init__(
        self,
        input_shape: ShapeSpec,
        *,
        embed_dim: int = 512,
        temperature: float = 0.01,
        bg_alpha: float = 1.0,
        score_calibration: bool = True,
        **kwargs,
    ):
        kwargs.update(num_classes=1, cls_agnostic_bbox_reg=True)
        super().__init__(input_shape, **kwargs)
        del self.cls_score  # replaced by the open-vocabulary classifier
        input_size = input_shape.channels * (input_shape.width or 1) * (input_shape.height or 1)
        self.classifier = OpenVocabClassifier(input_size, embed_dim, temperature)
        self.bg_alpha = float(bg_alpha)
        self.score_calibration = bool(score_calibration)

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        ret.update(
            embed_dim=cfg.MODEL.OPEN_VOCAB.EMBED_DIM,
            temperature=cfg.MODEL.OPEN_VOCAB.TEMPERATURE,
            bg_alpha=cfg.MODEL.OPEN_VOCAB.BG_ALPHA,
            score_calibration=cfg.MODEL.MASK_RCNN_STAR.SCORE_CALIBRATION,
        )
        if cfg.MODEL.ROI_BOX_HEAD.USE_SIGMOID_CE or cfg.MODEL.ROI_BOX_HEAD.USE_FED_LOSS:
            raise ValueError("Mask R-CNN*'s classifier is a softmax over phrases: USE_SIGMOID_CE / USE_FED_LOSS must be False")
        for key in ("num_classes", "cls_agnostic_bbox_reg", "use_fed_loss", "use_sigmoid_ce", "get_fed_loss_cls_weights"):
            ret.pop(key, None)  # fixed by the open-vocabulary design
        return ret

    def forward(self, x: Tensor, phrase_embeddings: Tensor) -> Tuple[Tensor, Tensor]:
        if x.dim() > 2:
            x = torch.flatten(x, start_dim=1)
        return self.classifier(x, phrase_embeddings), self.bbox_pred(x)

    def losses(self, predictions, proposals: List[Instances]) -> Dict[str, Tensor]:
        logits, deltas = predictions
        num_phrases = logits.shape[1] - 1
        targets = []
        for p in proposals:
            t = torch.full_like(p.gt_classes, num_phrases)  # background
            t[p.gt_classes < 0] = -1
            fg = p.gt_classes == 0
            if fg.any():
                t[fg] = p.gt_phrase_ids[fg]
            targets.append(t)
        targets = cat(targets) if targets else logits.new_zeros((0,), dtype=torch.long)
        _log_classification_stats(logits, targets)
        if proposals:
            proposal_boxes = cat([p.proposal_boxes.tensor for p in proposals])
            gt_boxes = cat([(p.gt_boxes if p.has("gt_boxes") else p.proposal_boxes).tensor for p in proposals])
            gt_classes = cat([p.gt_classes for p in proposals])
        else:
            proposal_boxes = gt_boxes = deltas.new_zeros((0, 4))
            gt_classes = targets
        loss_cls = region_phrase_contrastive_loss(
            logits, targets, bg_alpha=self.bg_alpha, normalizer=max(targets.numel(), 1)
        )
        losses = {
            "loss_cls": loss_cls,
            "loss_box_reg": self.box_reg_loss(proposal_boxes, gt_boxes, deltas, gt_classes),
        }
        return {k: v * self.loss_weight.get(k, 1.0) for k, v in losses.items()}

    def predict_probs(self, predictions, proposals: List[Instances]) -> List[Tensor]:
        """(|C| + 1)-way softmax, calibrated with the RPN objectness when ``score_calibration``."""
        logits, _ = predictions
        probs = F.softmax(logits.float(), dim=-1)
        if self.score_calibration:
            missing = [i for i, p in enumerate(proposals) if not p.has("objectness_logits")]
            if missing:
                raise ValueError("score calibration needs proposals with objectness_logits (RPN proposals)")
            probs = calibrated_scores(probs, cat([p.objectness_logits for p in proposals]))
        if len(proposals) == 1:  # one image (an export): no split, whose sizes tracing would freeze
            return (probs,)
        return probs.split([len(p) for p in proposals], dim=0)
