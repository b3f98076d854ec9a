"""FCOS-MO: FCOS with a Mask head and an Open-vocabulary classifier (paper sections 3.2-3.4).

Built on detectron2's :class:`~detectron2.modeling.meta_arch.fcos.FCOS` (anchor points, box
transform, centerness targets, decoding, NMS) and :class:`FCOSHead` (towers, per-level norm). What
changes, and why:

* **Classifier**: the towers' class logits are replaced by :class:`OpenVocabClassifier` (1x1
  projection to the phrase-embedding space, cosine / tau, zero background vector). Training phrases
  are free-form, so the label space of a batch is the set of phrases in that batch; the loss is
  :func:`region_phrase_contrastive_loss` (background terms scaled by alpha).
* **Matching**: detectron2's FCOS rule with the size range of each FPN level taken from
  ``MODEL.FCOS_MO.SIZE_RANGES`` (inherited from :class:`~alpseg.modeling.meta_arch.fcos_mask.FCOSMask`); every
  instance (mask, box or ALP) is matched the same way because ALP box *centers* are reliable even
  when extents are not.
* **Per-instance loss switches**: GIoU only for non-ALP instances (``gt_is_alp``), mask BCE only for
  instances with masks (``gt_has_mask``), classification and centerness for all (flags read by
  :mod:`~alpseg.modeling.instance_fields`).
* **Normalizers**: detectron2's EMA of the number of positive locations, one per supervision kind
  (batches without ALPs, batches with ALPs: one per dataset when batches alternate), and the GIoU sum
  divided by the EMA of the positives it is summed over (the non-ALP ones). See docs/fcos_mo.md.
* **Mask head**: any ``ROI_MASK_HEAD_REGISTRY`` head (Hourglass-20 by default) on RoIAlign'ed FPN
  features of GT boxes in training and of the final (post-NMS) boxes at test time.
* **Inference**: (|C| + 1)-way softmax against the test vocabulary plus background, score =
  sqrt(prob * sigmoid(centerness)), then FCOS's threshold / top-k / class-specific NMS / top-100.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.modeling.backbone import Backbone
from detectron2.modeling.box_regression import _dense_box_regression_loss
from detectron2.modeling.meta_arch.fcos import FCOSHead
from detectron2.modeling.poolers import ROIPooler
from detectron2.structures import Boxes, ImageList, Instances
from detectron2.utils.events import get_event_storage

from ..instance_fields import gt_is_alp
from ..open_vocab import OpenVocabClassifier, region_phrase_contrastive_loss
from ..vocabulary_mixin import PhraseVocabularyMixin, instance_phrases, vocabulary_kwargs_from_config
from .fcos_mask import FCOSMask, dense_detector_kwargs, dense_head_norm

__all__ = ["FCOSMO", "FCOSMOHead"]


class FCOSMOHead(FCOSHead):
    """FCOS towers whose classification output is a unit phrase-space embedding per location.

    ``forward(features)`` returns ``(embeddings, box_deltas, centerness)``: per level ``(N, H*W, D)``
    unit vectors, ``(N, 4, H, W)`` and ``(N, 1, H, W)`` (an empty list when centerness is off).
    """

    def __init__(
        self,
        *,
        input_shape: List[ShapeSpec],
        conv_dims: List[int],
        norm: str = "SyncBN",
        per_level_norm: bool = True,
        embed_dim: int = 512,
        temperature: float = 0.01,
        fg_bias_prior: float = 0.0,
        centerness: bool = True,
    ):
        """``fg_bias_prior``: see :class:`OpenVocabClassifier` (0, the paper's classifier, by default)."""
        # num_classes=1: the sigmoid class conv is built by RetinaNetHead and removed right away.
        super().__init__(input_shape=input_shape, conv_dims=conv_dims, num_classes=1,
                         norm=dense_head_norm(norm, per_level_norm))
        del self.cls_score
        self.classifier = OpenVocabClassifier(conv_dims[-1], embed_dim, temperature, fg_bias_prior=fg_bias_prior)
        if not centerness:
            del self.ctrness
        self.centerness = centerness

    def forward(self, features: List[Tensor]):
        assert len(features) == self._num_features
        embeddings, bbox_reg, ctrness = [], [], []
        for feature in features:
            emb = self.classifier.embed(self.cls_subnet(feature))
            embeddings.append(emb.reshape(emb.shape[0], -1, emb.shape[-1]))
            bbox_feature = self.bbox_subnet(feature)
            bbox_reg.append(self.bbox_pred(bbox_feature))
            if self.centerness:
                ctrness.append(self.ctrness(bbox_feature))
        return embeddings, bbox_reg, ctrness


@META_ARCH_REGISTRY.register()
class FCOSMO(PhraseVocabularyMixin, FCOSMask):  # FCOSMask brings the persistent EMA normalisers
    """FCOS-MO; see the module docstring. Test vocabulary: :meth:`set_test_vocabulary` or from cfg."""

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        head: FCOSMOHead,
        head_in_features: List[str],
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        phrase_bank: Any = None,
        phrase_bank_loader: Optional[Callable[[], Any]] = None,
        test_vocabulary_loader: Optional[Callable[[Any, Optional[str]], Any]] = None,
        default_test_dataset: Optional[str] = None,
        negatives: str = "global",
        bg_alpha: float = 0.1,
        size_ranges: Sequence[float] = (64, 128, 256, 512),
        center_sampling_radius: float = 1.5,
        centerness: bool = True,
        alp_normalizers: bool = True,
        mask_pooler: Optional[ROIPooler] = None,
        mask_head: Optional[nn.Module] = None,
        mask_in_features: Sequence[str] = (),
        loss_weights: Optional[Dict[str, float]] = None,
        test_score_thresh: float = 0.05,
        test_topk_candidates: int = 1000,
        test_nms_thresh: float = 0.2,
        max_detections_per_image: int = 100,
    ):
        """
        Args:
            phrase_bank, phrase_bank_loader, test_vocabulary_loader, default_test_dataset: see
                :meth:`PhraseVocabularyMixin._init_vocabulary`.
            bg_alpha: alpha of the contrastive loss's background terms.
            alp_normalizers: keep separate loss normalizers for batches that hold ALPs (see
                :meth:`loss_normalizers`); False shares detectron2's single one.
            loss_weights: multipliers keyed by loss name (``loss_cls``, ``loss_box_reg``,
                ``loss_centerness``, ``loss_mask``).
            Other arguments: as in :class:`FCOSMask`.
        """
        super().__init__(
            backbone=backbone,
            head=head,
            head_in_features=head_in_features,
            num_classes=0,  # open vocabulary: the class count is the batch's / test vocabulary's
            size_ranges=size_ranges,
            center_sampling_radius=center_sampling_radius,
            mask_pooler=mask_pooler,
            mask_head=mask_head,
            mask_in_features=mask_in_features,
            test_score_thresh=test_score_thresh,
            test_topk_candidates=test_topk_candidates,
            test_nms_thresh=test_nms_thresh,
            max_detections_per_image=max_detections_per_image,
            pixel_mean=pixel_mean,
            pixel_std=pixel_std,
        )
        self.bg_alpha = float(bg_alpha)
        self.centerness = bool(centerness)
        self.alp_normalizers = bool(alp_normalizers)
        self._init_vocabulary(phrase_bank, phrase_bank_loader, test_vocabulary_loader, default_test_dataset, negatives)
        self.loss_weights = {"loss_cls": 1.0, "loss_box_reg": 1.0, "loss_centerness": 1.0, "loss_mask": 1.0}
        self.loss_weights.update(loss_weights or {})

    @classmethod
    def from_config(cls, cfg):
        ret = dense_detector_kwargs(cfg)
        mo = cfg.MODEL.FCOS_MO
        feature_shapes = ret.pop("feature_shapes")
        ret["head"] = FCOSMOHead(
            input_shape=feature_shapes,
            conv_dims=[feature_shapes[0].channels] * mo.NUM_CONVS,
            norm=mo.NORM,
            per_level_norm=mo.PER_LEVEL_NORM,
            embed_dim=cfg.MODEL.OPEN_VOCAB.EMBED_DIM,
            temperature=cfg.MODEL.OPEN_VOCAB.TEMPERATURE,
            fg_bias_prior=mo.PRIOR_PROB if mo.LEARNABLE_FG_BIAS else 0.0,
            centerness=mo.CENTERNESS,
        )
        ret.update(vocabulary_kwargs_from_config(cfg))
        ret.update(
            bg_alpha=cfg.MODEL.OPEN_VOCAB.BG_ALPHA,
            centerness=mo.CENTERNESS,
            alp_normalizers=mo.ALP_NORMALIZERS,
            loss_weights={
                "loss_cls": mo.CLS_LOSS_WEIGHT,
                "loss_box_reg": mo.BOX_REG_LOSS_WEIGHT,
                "loss_centerness": mo.CENTERNESS_LOSS_WEIGHT,
                "loss_mask": mo.MASK_LOSS_WEIGHT,
            },
        )
        return ret

    # ------------------------------------------------------------------ matching
    @torch.no_grad()
    def match(self, anchors: List[Boxes], gt_instances: List[Instances]) -> List[Tensor]:
        """Per image, the index of the instance each anchor point is matched to (-1: background).

        detectron2's :meth:`FCOS.label_anchors` with each instance's index + 1 as its "class": FCOSMO's
        ``num_classes`` is 0, the label detectron2 gives background, so label - 1 is the index or -1.
        """
        assert self.num_classes == 0
        indexed = [
            Instances(inst.image_size, gt_boxes=inst.gt_boxes,
                      gt_classes=torch.arange(1, len(inst) + 1, device=inst.gt_boxes.device))
            for inst in gt_instances
        ]
        labels, _ = self.label_anchors(anchors, indexed)
        return [label - 1 for label in labels]

    # ------------------------------------------------------------------ training
    def loss_normalizers(self, num_pos: int, num_box_pos: int, has_alps: bool) -> Tuple[float, float]:
        """EMA normalizers ``(classification and centerness, GIoU)`` of a batch.

        Each counts the positive locations its loss is summed over: all positives, and the non-ALP
        positives for GIoU. Batches without ALPs keep detectron2's ``loss_normalizer`` (both counts are
        equal there); batches with ALPs keep their own pair when ``alp_normalizers`` is on, so that
        alternating COCO and LocNar batches, whose positive counts differ, do not pull one EMA back
        and forth (and the GIoU EMA never sees the zero box positives of an ALP-only batch).
        """
        if not has_alps:
            shared = self._ema_update("loss_normalizer", num_pos, 300)
            return shared, shared
        prefix = "loss_normalizer_alp" if self.alp_normalizers else "loss_normalizer"
        return (
            self._ema_update(prefix, num_pos, 300),
            self._ema_update(prefix + "_box", num_box_pos, 300),
        )

    def forward_training(self, images: ImageList, features: List[Tensor], predictions, gt_instances: List[Instances]):
        embeddings, box_deltas, centerness = predictions
        (box_deltas,) = self._transpose_dense_predictions([box_deltas], [4])
        anchors = self.anchor_generator(features)
        matched = self.match(anchors, gt_instances)

        vocab, (phrase_ids,) = self.batch_vocabulary([instance_phrases(inst, "FCOSMO") for inst in gt_instances])
        num_phrases = len(vocab)
        targets, gt_boxes, is_alp = [], [], []
        has_alps = False
        for inst, idx, ids in zip(gt_instances, matched, phrase_ids):
            fg = idx >= 0
            safe = idx.clamp(min=0)
            if len(inst):
                alp = gt_is_alp(inst, self.device)
                has_alps = has_alps or bool(alp.any())
                targets.append(torch.where(fg, ids[safe], torch.full_like(idx, num_phrases)))
                gt_boxes.append(inst.gt_boxes.tensor[safe])
                is_alp.append(alp[safe] & fg)
            else:
                targets.append(torch.full_like(idx, num_phrases))
                gt_boxes.append(Boxes.cat(anchors).tensor.new_zeros((len(idx), 4)))
                is_alp.append(torch.zeros_like(fg))
        targets, is_alp = torch.stack(targets), torch.stack(is_alp)  # (N, R)
        pos = targets != num_phrases
        box_pos = pos & ~is_alp

        num_pos, num_box_pos = int(pos.sum().item()), int(box_pos.sum().item())
        storage = get_event_storage()
        storage.put_scalar("num_pos_anchors", num_pos / len(gt_instances))
        storage.put_scalar("num_alp_pos_anchors", (num_pos - num_box_pos) / len(gt_instances))
        normalizer, box_normalizer = self.loss_normalizers(num_pos, num_box_pos, has_alps)

        text = self.embed_phrases(vocab) if num_phrases else embeddings[0].new_zeros((0, embeddings[0].shape[-1]))
        logits = self.head.classifier.logits(torch.cat(embeddings, dim=1), text)
        losses = {
            "loss_cls": region_phrase_contrastive_loss(logits, targets, self.bg_alpha, normalizer),
            # float32: under AMP, fvcore's giou_loss fails on half-precision predictions (detectron2's
            # own FCOS crashes there) and box decoding in fp16 loses precision on large images.
            "loss_box_reg": _dense_box_regression_loss(
                anchors, self.box2box_transform, [d.float() for d in box_deltas], gt_boxes, box_pos,
                box_reg_loss_type="giou",
            ) / box_normalizer,
        }
        if self.centerness:
            (centerness,) = self._transpose_dense_predictions([centerness], [1])
            ctr_targets = self.compute_ctrness_targets(anchors, gt_boxes)
            ctr_pred = torch.cat(centerness, dim=1).squeeze(dim=2)
            losses["loss_centerness"] = F.binary_cross_entropy_with_logits(
                ctr_pred[pos], ctr_targets[pos].to(ctr_pred.dtype), reduction="sum"
            ) / normalizer
        if self.mask_head is not None:
            losses["loss_mask"] = self._mask_loss(features, gt_instances)
        return {k: v * self.loss_weights[k] for k, v in losses.items()}

    # ------------------------------------------------------------------ inference
    def dense_scores(self, embeddings: Tensor, text: Tensor, centerness: Optional[Tensor]) -> Tensor:
        """Detection scores ``(N, R, C)`` of unit embeddings ``(N, R, D)`` against ``C`` phrases.

        (C + 1)-way softmax (background last, dropped), then the geometric mean with the predicted
        centerness probability when the centerness branch exists (``centerness``: ``(N, R, 1)`` logits).
        """
        prob = F.softmax(self.head.classifier.logits(embeddings, text).float(), dim=-1)[..., :-1]
        if centerness is not None:
            prob = torch.sqrt(prob * centerness.float().sigmoid())
        return prob

    def forward_inference(
        self, images: ImageList, features: List[Tensor], predictions, text: Optional[Tensor] = None
    ) -> List[Instances]:
        """Detections of every image: FCOS decoding against ``text`` (the test vocabulary's ``(C, D)``
        embeddings when None; an exported graph passes them as an input), then the mask head on the
        kept boxes (:meth:`predict_masks`)."""
        embeddings, box_deltas, centerness = predictions
        (box_deltas,) = self._transpose_dense_predictions([box_deltas], [4])
        if self.centerness:
            (centerness,) = self._transpose_dense_predictions([centerness], [1])
        anchors = self.anchor_generator(features)
        if text is None:
            _, text = self.test_vocabulary

        scores = [
            self.dense_scores(emb, text, centerness[level] if self.centerness else None)
            for level, emb in enumerate(embeddings)
        ]

        results: List[Instances] = []
        for img_idx, image_size in enumerate(images.image_sizes):
            results.append(
                self.inference_single_image(
                    anchors, [s[img_idx] for s in scores], [d[img_idx] for d in box_deltas], image_size
                )
            )
        if self.mask_head is not None:
            self.predict_masks(features, results)
        return results
