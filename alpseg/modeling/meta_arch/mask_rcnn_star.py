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

from typing import List, Optional, Tuple

import torch
from torch import Tensor

from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.modeling.meta_arch import GeneralizedRCNN
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import get_event_storage

from ..instance_fields import gt_has_mask, gt_is_alp
from ..proposal_generator.selective_rpn import SelectiveRPN
from ..roi_heads.mask_rcnn_star_roi_heads import MaskRCNNStarROIHeads
from ..vocabulary_mixin import PhraseVocabularyMixin, instance_phrases, vocabulary_kwargs_from_config

__all__ = ["ALP_SUPERVISION_MODES", "MaskRCNNStar"]

ALP_SUPERVISION_MODES = ("boxes", "image_labels", "none")


@META_ARCH_REGISTRY.register()
class MaskRCNNStar(PhraseVocabularyMixin, GeneralizedRCNN):
    """Mask R-CNN* (see the module docstring). Test vocabulary: :meth:`set_test_vocabulary` or cfg.

    Training inputs are detectron2 dicts whose ``instances`` carry ``gt_boxes``, ``gt_phrases``,
    ``gt_is_alp``, ``gt_has_mask`` and (when any instance has a mask) ``gt_masks`` (docs/architecture.md, instance fields), plus
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
                :class:`~alpseg.modeling.vocabulary_mixin.PhraseVocabularyMixin`.
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
                raise KeyError("instances with gt_has_mask True need gt_masks (docs/architecture.md, instance fields)")
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
