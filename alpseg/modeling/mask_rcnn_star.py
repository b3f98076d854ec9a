"""Mask R-CNN*: the open-vocabulary Mask R-CNN baseline of the paper (section 4, Tables 3 and 4).

Detectron2's Mask R-CNN R50-FPN with the three changes the paper makes for a fair comparison with
FCOS-MO, plus the ways ALPs may supervise it:

* **Class-agnostic box regression** in the second stage (4 deltas per RoI), so boxes generalize to
  classes without box labels.
* **Open-vocabulary classifier** (:class:`~alpseg.modeling.open_vocab.OpenVocabClassifier`): the RoI
  feature is projected to the text space and scored by cosine / tau against the phrase embeddings
  of the batch (the other phrases are the negatives) and the zero background vector.
* **Hourglass-20 mask head** (``HourglassMaskHead``) trained on the **ground-truth boxes** of
  instances that have masks (Deep-MARC), not on proposals.
* **Calibrated test scores**: ``sqrt(class probability * sigmoid(RPN objectness logit))`` (ViLD,
  Detic); the RPN logit travels with each proposal (``objectness_logits``).

``MODEL.MASK_RCNN_STAR.ALP_SUPERVISION`` says what ALP instances (``gt_is_alp``) and image-level
records (dataset dict ``image_phrases``) train:

* ``"boxes"``: ALP boxes are ordinary boxes for the RPN, the box head and the classifier; they never
  reach the mask head (no mask). Image-level-only records train nothing.
* ``"image_labels"`` (Detic-style, Table 3 "ALPs without boxes"): ALP boxes are discarded; the
  image's K distinct phrases (ALP phrases and ``image_phrases``) supervise the classifier through
  the largest-area RPN proposal: its logits against every phrase of the batch (background excluded)
  are trained towards the K-hot / K target with weight ``IMAGE_LABEL_LOSS_WEIGHT`` (0.1).
* ``"none"``: ALPs train nothing.

An image whose only supervision is ALPs, in a mode where ALP boxes are not used, is left out of the
RPN and box-head losses entirely: it would otherwise teach that its objects are background.
"""
from __future__ import annotations

import logging
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch.nn import functional as F

from detectron2.config import configurable
from detectron2.layers import ShapeSpec, cat
from detectron2.modeling import META_ARCH_REGISTRY, PROPOSAL_GENERATOR_REGISTRY, ROI_HEADS_REGISTRY
from detectron2.modeling.meta_arch import GeneralizedRCNN
from detectron2.modeling.proposal_generator import RPN
from detectron2.modeling.roi_heads import StandardROIHeads
from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers, _log_classification_stats
from detectron2.structures import Boxes, ImageList, Instances
from detectron2.utils.events import get_event_storage

from .instance_fields import gt_has_mask, gt_is_alp
from .open_vocab import OpenVocabClassifier, region_phrase_contrastive_loss
from .vocabulary import PhraseVocabularyMixin, instance_phrases, vocabulary_kwargs_from_config

__all__ = [
    "ALP_SUPERVISION_MODES",
    "MaskRCNNStar",
    "MaskRCNNStarROIHeads",
    "OpenVocabFastRCNNOutputLayers",
    "SelectiveRPN",
    "calibrated_scores",
    "image_label_loss",
    "largest_box_index",
]

logger = logging.getLogger(__name__)

ALP_SUPERVISION_MODES = ("boxes", "image_labels", "none")


# ------------------------------------------------------------------------------------------ pieces
def calibrated_scores(class_probs: Tensor, objectness_logits: Tensor) -> Tensor:
    """Geometric mean of each class probability ``(R, C)`` and its proposal's objectness ``(R,)``."""
    return torch.sqrt(class_probs * torch.sigmoid(objectness_logits.float())[:, None])


def largest_box_index(boxes: Boxes) -> int:
    """Index of the largest-area box (the first one on ties: RPN proposals are sorted by score)."""
    if len(boxes) == 0:
        raise ValueError("no boxes to choose the largest from")
    return int(torch.argmax(boxes.area()).item())


def image_label_loss(phrase_logits: Tensor, image_phrase_ids: Sequence[Tensor]) -> Tensor:
    """Detic-style image-label loss of the paper's "ALPs without boxes" variant, averaged over images.

    Args:
        phrase_logits: ``(M, K)`` logits of one region per image (the largest proposal) against the
            ``K`` phrases of the batch, *without* the background column.
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


# ------------------------------------------------------------------------------------------ RPN
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


# ------------------------------------------------------------------------------------------ box predictor
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


# ------------------------------------------------------------------------------------------ ROI heads
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
    def __init__(self, *, image_label_loss_weight: float = 0.1, **kwargs):
        kwargs["num_classes"] = 1
        super().__init__(**kwargs)
        self.image_label_loss_weight = float(image_label_loss_weight)
        self.test_phrase_embeddings: Optional[Tensor] = None

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        ret["image_label_loss_weight"] = cfg.MODEL.MASK_RCNN_STAR.IMAGE_LABEL_LOSS_WEIGHT
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
        losses["loss_image_label"] = self.image_label_loss_weight * image_label_loss(
            logits[is_largest, :-1], [image_label_ids[i] for i in labelled]
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

    def _forward_box(self, features: Dict[str, Tensor], proposals: List[Instances]):
        """Inference: score proposals against the test vocabulary and run per-class NMS."""
        assert not self.training, "training goes through forward()"
        if self.test_phrase_embeddings is None:
            raise ValueError("no test vocabulary: MaskRCNNStar sets test_phrase_embeddings before inference")
        box_features = self.box_pooler([features[f] for f in self.box_in_features], [p.proposal_boxes for p in proposals])
        predictions = self.box_predictor(self.box_head(box_features), self.test_phrase_embeddings)
        pred_instances, _ = self.box_predictor.inference(predictions, proposals)
        return pred_instances


# ------------------------------------------------------------------------------------------ meta-arch
@META_ARCH_REGISTRY.register()
class MaskRCNNStar(PhraseVocabularyMixin, GeneralizedRCNN):
    """Mask R-CNN* (see the module docstring). Test vocabulary: :meth:`set_test_vocabulary` or cfg.

    Training inputs are detectron2 dicts whose ``instances`` carry ``gt_boxes``, ``gt_phrases``,
    ``gt_is_alp``, ``gt_has_mask`` and (when any instance has a mask) ``gt_masks`` (SPEC 2.2), plus
    ``image_phrases`` for image-level records. Predictions' ``pred_classes`` index the test vocabulary.
    """

    @configurable
    def __init__(
        self,
        *,
        alp_supervision: str = "boxes",
        phrase_bank=None,
        phrase_bank_loader=None,
        test_vocabulary_loader=None,
        default_test_dataset: Optional[str] = None,
        negatives: str = "global",
        **kwargs,
    ):
        """
        Args:
            alp_supervision: one of :data:`ALP_SUPERVISION_MODES` (see the module docstring).
            phrase_bank, phrase_bank_loader, test_vocabulary_loader, default_test_dataset: see
                :class:`~alpseg.modeling.vocabulary.PhraseVocabularyMixin`.
            kwargs: arguments of :class:`GeneralizedRCNN`; ``roi_heads`` must be
                :class:`MaskRCNNStarROIHeads`.
        """
        super().__init__(**kwargs)
        if alp_supervision not in ALP_SUPERVISION_MODES:
            raise ValueError(
                f"MODEL.MASK_RCNN_STAR.ALP_SUPERVISION must be one of {ALP_SUPERVISION_MODES}, got {alp_supervision!r}"
            )
        if not isinstance(self.roi_heads, MaskRCNNStarROIHeads):
            raise ValueError("MaskRCNNStar needs MODEL.ROI_HEADS.NAME: MaskRCNNStarROIHeads")
        if self.proposal_generator is None:
            raise ValueError("MaskRCNNStar needs an RPN (MODEL.PROPOSAL_GENERATOR.NAME: SelectiveRPN)")
        self.alp_supervision = alp_supervision
        self._init_vocabulary(phrase_bank, phrase_bank_loader, test_vocabulary_loader, default_test_dataset, negatives)

    @classmethod
    def from_config(cls, cfg):
        ret = super().from_config(cfg)
        ret["alp_supervision"] = cfg.MODEL.MASK_RCNN_STAR.ALP_SUPERVISION
        ret.update(vocabulary_kwargs_from_config(cfg))
        return ret

    # ------------------------------------------------------------------ supervision plan
    def _box_target(self, inst: Instances, keep: Tensor) -> Instances:
        """The kept instances as box / mask targets (tensor fields only; phrases are handled apart)."""
        device = self.device
        boxes = inst.gt_boxes[keep] if inst.has("gt_boxes") else Boxes(torch.zeros((0, 4), device=device))
        n = len(boxes)
        has_mask = gt_has_mask(inst, device)[keep]
        target = Instances(inst.image_size, gt_boxes=boxes, gt_has_mask=has_mask)
        target.gt_classes = torch.zeros(n, dtype=torch.long, device=device)  # 0 = foreground (class-agnostic)
        if has_mask.any():
            if not inst.has("gt_masks"):
                raise KeyError("instances with gt_has_mask True need gt_masks (SPEC 2.2)")
            target.gt_masks = inst.gt_masks[keep]
        return target

    def _split_supervision(
        self, batched_inputs: List[dict]
    ) -> Tuple[List[Instances], List[List[str]], List[bool], List[List[str]]]:
        """Per image: the instances that train boxes and their phrases, whether the image takes part
        in the RPN / box-head losses, and its image-level phrases (``image_labels`` mode only)."""
        targets, box_phrases, supervised, label_phrases = [], [], [], []
        for x in batched_inputs:
            if "instances" not in x:
                raise KeyError("Mask R-CNN* training inputs need 'instances' (use alpseg's dataset mapper)")
            inst = x["instances"].to(self.device)
            phrases = instance_phrases(inst, "Mask R-CNN*")
            is_alp = gt_is_alp(inst, self.device)
            image_phrases = list(x.get("image_phrases", None) or [])
            keep = torch.ones_like(is_alp) if self.alp_supervision == "boxes" else ~is_alp
            keep_list = keep.tolist()
            targets.append(self._box_target(inst, keep))
            # An image with nothing but ALPs, whose boxes are not used, must not train boxes as background.
            has_alps = bool(is_alp.any()) or bool(image_phrases)
            is_supervised = any(keep_list) or not has_alps
            supervised.append(is_supervised)
            box_phrases.append([p for p, k in zip(phrases, keep_list) if k] if is_supervised else [])
            labels: List[str] = []
            if self.alp_supervision == "image_labels":
                alp_phrases = [p for p, a in zip(phrases, is_alp.tolist()) if a]
                labels = list(dict.fromkeys(alp_phrases + image_phrases))
            label_phrases.append(labels)
        return targets, box_phrases, supervised, label_phrases

    def forward(self, batched_inputs: List[dict]):
        if not self.training:
            return self.inference(batched_inputs)
        images = self.preprocess_image(batched_inputs)
        targets, box_phrases, supervised, label_phrases = self._split_supervision(batched_inputs)
        # the batch vocabulary (all processes' phrases unless MODEL.OPEN_VOCAB.NEGATIVES is "local")
        vocab, (box_ids, label_ids) = self.batch_vocabulary(box_phrases, label_phrases)
        for target, ids in zip(targets, box_ids):
            target.gt_phrase_ids = ids
        storage = get_event_storage()
        storage.put_scalar("mask_rcnn_star/box_supervised_images", float(sum(supervised)))
        storage.put_scalar("mask_rcnn_star/image_label_images", float(sum(1 for p in label_phrases if p)))
        storage.put_scalar("mask_rcnn_star/batch_phrases", float(len(vocab)))

        features = self.backbone(images.tensor)
        if vocab:
            phrase_embeddings = self.embed_phrases(vocab)
        else:  # no phrase in the batch (e.g. only emptied crops): background-only classification
            dim = self.roi_heads.box_predictor.classifier.embed_dim
            phrase_embeddings = torch.zeros((0, dim), device=self.device)
        if all(supervised):
            proposals, proposal_losses = self.proposal_generator(images, features, targets)
        elif isinstance(self.proposal_generator, SelectiveRPN):
            proposals, proposal_losses = self.proposal_generator(images, features, targets, supervised=supervised)
        else:
            raise ValueError(
                "this batch has images without box supervision (ALP-only images under "
                f"ALP_SUPERVISION={self.alp_supervision!r}); set MODEL.PROPOSAL_GENERATOR.NAME: SelectiveRPN"
            )
        _, detector_losses = self.roi_heads(
            images, features, proposals, targets,
            phrase_embeddings=phrase_embeddings, box_supervised=supervised, image_label_ids=label_ids,
        )
        losses = dict(detector_losses)
        losses.update(proposal_losses)
        return losses

    def inference(self, batched_inputs, detected_instances=None, do_postprocess: bool = True):
        if detected_instances is None:
            self.roi_heads.test_phrase_embeddings = self.test_vocabulary[1]
        return super().inference(batched_inputs, detected_instances, do_postprocess)
