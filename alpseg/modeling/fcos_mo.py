"""FCOS-MO: FCOS with a Mask head and an Open-vocabulary classifier (paper sections 3.2-3.4).

Built on detectron2's :class:`~detectron2.modeling.meta_arch.fcos.FCOS` (anchor points, box
transform, centerness targets, decoding, NMS) and :class:`FCOSHead` (towers, per-level norm). What
changes, and why:

* **Classifier**: the towers' class logits are replaced by :class:`OpenVocabClassifier` (1x1
  projection to the phrase-embedding space, cosine / tau, zero background vector). Training phrases
  are free-form, so the label space of a batch is the set of phrases in that batch; the loss is
  :func:`region_phrase_contrastive_loss` (background terms scaled by alpha).
* **Matching**: detectron2's center sampling (radius in strides, anchor point inside the box) with
  the size range of each FPN level taken from ``MODEL.FCOS_MO.SIZE_RANGES``; every instance (mask,
  box or ALP) is matched the same way because ALP box *centers* are reliable even when extents are not.
* **Per-instance loss switches**: GIoU only for non-ALP instances (``gt_is_alp``), mask BCE only for
  instances with masks (``gt_has_mask``), classification and centerness for all.
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
from detectron2.layers import ShapeSpec, get_norm
from detectron2.modeling import BACKBONE_REGISTRY, META_ARCH_REGISTRY, build_backbone
from detectron2.modeling.backbone import FPN, Backbone
from detectron2.modeling.backbone.fpn import LastLevelP6P7
from detectron2.modeling.backbone.resnet import build_resnet_backbone
from detectron2.modeling.box_regression import _dense_box_regression_loss
from detectron2.modeling.meta_arch.fcos import FCOS, FCOSHead
from detectron2.modeling.poolers import ROIPooler
from detectron2.modeling.roi_heads.mask_head import build_mask_head, mask_rcnn_inference
from detectron2.structures import Boxes, ImageList, Instances, pairwise_point_box_distance
from detectron2.utils.events import get_event_storage

from .open_vocab import OpenVocabClassifier, region_phrase_contrastive_loss
from .vocabulary import PhraseVocabularyMixin, index_phrases, instance_phrases, vocabulary_kwargs_from_config

__all__ = ["FCOSMO", "FCOSMOHead", "build_fcos_resnet_fpn_backbone"]



@BACKBONE_REGISTRY.register()
def build_fcos_resnet_fpn_backbone(cfg, input_shape: ShapeSpec) -> Backbone:
    """ResNet + FPN with P6/P7 computed from P5, as FCOS does (RetinaNet's builder uses C5)."""
    out_channels = cfg.MODEL.FPN.OUT_CHANNELS
    return FPN(
        bottom_up=build_resnet_backbone(cfg, input_shape),
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=out_channels,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelP6P7(out_channels, out_channels, in_feature="p5"),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )


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
        prior_prob: float = 0.01,
        centerness: bool = True,
    ):
        if not per_level_norm and norm in ("BN", "SyncBN"):
            # A callable makes RetinaNetHead share one norm across levels instead of cycling.
            shared_norm = norm
            norm = lambda c: get_norm(shared_norm, c)  # noqa: E731
        # num_classes=1: the sigmoid class conv is built by RetinaNetHead and removed right away.
        super().__init__(input_shape=input_shape, conv_dims=conv_dims, num_classes=1, norm=norm)
        del self.cls_score
        self.classifier = OpenVocabClassifier(conv_dims[-1], embed_dim, temperature, prior_prob)
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


def _batch_vocabulary(gt_instances: List[Instances], device: torch.device) -> Tuple[List[str], List[Tensor]]:
    """Unique phrases of the batch (first-appearance order) and each instance's index into them."""
    index: Dict[str, int] = {}
    ids = index_phrases([instance_phrases(inst, "FCOSMO") for inst in gt_instances], index, device)
    return list(index), ids


def _bool_field(inst: Instances, name: str, default: bool, device: torch.device) -> Tensor:
    """A per-instance bool field, or ``default`` for every instance when the field is absent."""
    if inst.has(name):
        return inst.get(name).to(device=device, dtype=torch.bool)
    return torch.full((len(inst),), default, dtype=torch.bool, device=device)


@META_ARCH_REGISTRY.register()
class FCOSMO(PhraseVocabularyMixin, FCOS):
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
        bg_alpha: float = 0.1,
        size_ranges: Sequence[float] = (64, 128, 256, 512),
        center_sampling_radius: float = 1.5,
        centerness: bool = True,
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
            size_ranges: object-size boundaries between consecutive levels (len(levels) - 1 values).
            mask_pooler, mask_head: both None for a detector without masks (Table 2, first row).
            loss_weights: multipliers keyed by loss name (``loss_cls``, ``loss_box_reg``,
                ``loss_centerness``, ``loss_mask``).
            Other arguments: as in detectron2's :class:`FCOS`.
        """
        super().__init__(
            backbone=backbone,
            head=head,
            head_in_features=head_in_features,
            num_classes=0,  # open vocabulary: the class count is the batch's / test vocabulary's
            center_sampling_radius=center_sampling_radius,
            test_score_thresh=test_score_thresh,
            test_topk_candidates=test_topk_candidates,
            test_nms_thresh=test_nms_thresh,
            max_detections_per_image=max_detections_per_image,
            pixel_mean=pixel_mean,
            pixel_std=pixel_std,
        )
        if len(size_ranges) != len(head_in_features) - 1:
            raise ValueError(
                f"MODEL.FCOS_MO.SIZE_RANGES needs {len(head_in_features) - 1} boundaries for "
                f"{len(head_in_features)} levels, got {list(size_ranges)}"
            )
        self.size_ranges = [float(s) for s in size_ranges]
        self.bg_alpha = float(bg_alpha)
        self.centerness = bool(centerness)
        self._init_vocabulary(phrase_bank, phrase_bank_loader, test_vocabulary_loader, default_test_dataset)
        self.loss_weights = {"loss_cls": 1.0, "loss_box_reg": 1.0, "loss_centerness": 1.0, "loss_mask": 1.0}
        self.loss_weights.update(loss_weights or {})
        if (mask_pooler is None) != (mask_head is None):
            raise ValueError("mask_pooler and mask_head come together (both or neither)")
        self.mask_pooler = mask_pooler
        self.mask_head = mask_head
        missing = [f for f in mask_in_features if f not in head_in_features]
        if missing:
            raise ValueError(f"MASK_IN_FEATURES {missing} are not among the head's features {head_in_features}")
        self._mask_level_idx = [head_in_features.index(f) for f in mask_in_features]

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        shapes = backbone.output_shape()
        mo = cfg.MODEL.FCOS_MO
        in_features = list(mo.IN_FEATURES)
        missing = [f for f in in_features if f not in shapes]
        if missing:
            raise ValueError(f"MODEL.FCOS_MO.IN_FEATURES {missing} not produced by the backbone ({sorted(shapes)})")
        feature_shapes = [shapes[f] for f in in_features]
        head = FCOSMOHead(
            input_shape=feature_shapes,
            conv_dims=[feature_shapes[0].channels] * mo.NUM_CONVS,
            norm=mo.NORM,
            per_level_norm=mo.PER_LEVEL_NORM,
            embed_dim=cfg.MODEL.OPEN_VOCAB.EMBED_DIM,
            temperature=cfg.MODEL.OPEN_VOCAB.TEMPERATURE,
            prior_prob=mo.PRIOR_PROB,
            centerness=mo.CENTERNESS,
        )
        ret = {
            "backbone": backbone,
            "head": head,
            "head_in_features": in_features,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            **vocabulary_kwargs_from_config(cfg),
            "bg_alpha": cfg.MODEL.OPEN_VOCAB.BG_ALPHA,
            "size_ranges": mo.SIZE_RANGES,
            "center_sampling_radius": mo.CENTER_SAMPLING_RADIUS,
            "centerness": mo.CENTERNESS,
            "loss_weights": {
                "loss_cls": mo.CLS_LOSS_WEIGHT,
                "loss_box_reg": mo.BOX_REG_LOSS_WEIGHT,
                "loss_centerness": mo.CENTERNESS_LOSS_WEIGHT,
                "loss_mask": mo.MASK_LOSS_WEIGHT,
            },
            "test_score_thresh": mo.SCORE_THRESH_TEST,
            "test_topk_candidates": mo.TOPK_CANDIDATES_TEST,
            "test_nms_thresh": mo.NMS_THRESH_TEST,
            "max_detections_per_image": mo.DETECTIONS_PER_IMAGE,
        }
        if cfg.MODEL.MASK_ON:
            mask_features = list(mo.MASK_IN_FEATURES)
            resolution = cfg.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION
            ret["mask_in_features"] = mask_features
            ret["mask_pooler"] = ROIPooler(
                output_size=resolution,
                scales=[1.0 / shapes[f].stride for f in mask_features],
                sampling_ratio=cfg.MODEL.ROI_MASK_HEAD.POOLER_SAMPLING_RATIO,
                pooler_type=cfg.MODEL.ROI_MASK_HEAD.POOLER_TYPE,
            )
            ret["mask_head"] = build_mask_head(
                cfg, ShapeSpec(channels=shapes[mask_features[0]].channels, height=resolution, width=resolution)
            )
        return ret

    # ------------------------------------------------------------------ matching
    @torch.no_grad()
    def _match_anchors(self, gt_boxes: Boxes, anchors: List[Boxes]) -> Tensor:
        """detectron2's FCOS matching rule with the per-level size ranges of the config.

        Returns the ``(M, R)`` quality matrix of :meth:`FCOS._match_anchors`: positive where anchor
        point ``r`` lies within ``radius * stride`` of box ``m``'s center, inside the box, and the
        box's largest point-to-edge distance falls in the level's size range; smaller boxes win ties.
        """
        num_per_level = [len(a) for a in anchors]
        bounds = [0.0] + self.size_ranges + [float("inf")]
        device = gt_boxes.device
        lower = torch.cat([torch.full((n,), bounds[i], device=device) for i, n in enumerate(num_per_level)])
        upper = torch.cat([torch.full((n,), bounds[i + 1], device=device) for i, n in enumerate(num_per_level)])
        anchors = Boxes.cat(anchors)
        centers = anchors.get_centers()
        strides = anchors.tensor[:, 2] - anchors.tensor[:, 0]

        center_dists = (centers[None, :, :] - gt_boxes.get_centers()[:, None, :]).abs_()
        quality = center_dists.max(dim=2).values < self.center_sampling_radius * strides[None, :]
        edge_dists = pairwise_point_box_distance(centers, gt_boxes).permute(1, 0, 2)  # (M, R, 4)
        quality &= edge_dists.min(dim=2).values > 0
        reach = edge_dists.max(dim=2).values
        quality &= (reach > lower[None, :]) & (reach < upper[None, :])
        return quality.to(torch.float32) * (1e8 - gt_boxes.area()[:, None])

    @torch.no_grad()
    def match(self, anchors: List[Boxes], gt_instances: List[Instances]) -> List[Tensor]:
        """Per image, the index of the instance each anchor point is matched to (-1: background)."""
        num_anchors = sum(len(a) for a in anchors)
        matched = []
        for inst in gt_instances:
            if len(inst) == 0:
                matched.append(torch.full((num_anchors,), -1, dtype=torch.long, device=self.device))
                continue
            quality, idxs = self._match_anchors(inst.gt_boxes, anchors).max(dim=0)
            idxs[quality < 1e-5] = -1
            matched.append(idxs)
        return matched

    # ------------------------------------------------------------------ training
    def forward_training(self, images: ImageList, features: List[Tensor], predictions, gt_instances: List[Instances]):
        embeddings, box_deltas, centerness = predictions
        (box_deltas,) = self._transpose_dense_predictions([box_deltas], [4])
        anchors = self.anchor_generator(features)
        matched = self.match(anchors, gt_instances)

        vocab, phrase_ids = _batch_vocabulary(gt_instances, self.device)
        num_phrases = len(vocab)
        targets, gt_boxes, is_alp = [], [], []
        for inst, idx, ids in zip(gt_instances, matched, phrase_ids):
            fg = idx >= 0
            safe = idx.clamp(min=0)
            if len(inst):
                targets.append(torch.where(fg, ids[safe], torch.full_like(idx, num_phrases)))
                gt_boxes.append(inst.gt_boxes.tensor[safe])
                is_alp.append(_bool_field(inst, "gt_is_alp", False, self.device)[safe] & fg)
            else:
                targets.append(torch.full_like(idx, num_phrases))
                gt_boxes.append(Boxes.cat(anchors).tensor.new_zeros((len(idx), 4)))
                is_alp.append(torch.zeros_like(fg))
        targets, is_alp = torch.stack(targets), torch.stack(is_alp)  # (N, R)
        pos = targets != num_phrases
        box_pos = pos & ~is_alp

        num_pos = pos.sum().item()
        storage = get_event_storage()
        storage.put_scalar("num_pos_anchors", num_pos / len(gt_instances))
        storage.put_scalar("num_alp_pos_anchors", is_alp.sum().item() / len(gt_instances))
        normalizer = self._ema_update("loss_normalizer", max(num_pos, 1), 300)

        text = self.embed_phrases(vocab) if num_phrases else embeddings[0].new_zeros((0, embeddings[0].shape[-1]))
        logits = self.head.classifier.logits(torch.cat(embeddings, dim=1), text)
        losses = {
            "loss_cls": region_phrase_contrastive_loss(logits, targets, self.bg_alpha, normalizer),
            # float32: under AMP, fvcore's giou_loss fails on half-precision predictions (detectron2's
            # own FCOS crashes there) and box decoding in fp16 loses precision on large images.
            "loss_box_reg": _dense_box_regression_loss(
                anchors, self.box2box_transform, [d.float() for d in box_deltas], gt_boxes, box_pos,
                box_reg_loss_type="giou",
            ) / normalizer,
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

    def _mask_loss(self, features: List[Tensor], gt_instances: List[Instances]) -> Tensor:
        """Mask head on GT boxes of instances with masks (Deep-MARC trains on GT boxes only)."""
        rois = []
        for inst in gt_instances:
            # Index fields one by one: Instances cannot index its list-valued gt_phrases.
            has_mask = _bool_field(inst, "gt_has_mask", inst.has("gt_masks"), self.device)
            roi = Instances(inst.image_size)
            roi.proposal_boxes = inst.gt_boxes[has_mask]
            if has_mask.any():
                if not inst.has("gt_masks"):
                    raise KeyError("instances marked gt_has_mask carry no gt_masks")
                roi.gt_masks = inst.gt_masks[has_mask]
            rois.append(roi)
        mask_features = self.mask_pooler(
            [features[i] for i in self._mask_level_idx], [r.proposal_boxes for r in rois]
        )
        return self.mask_head(mask_features, rois)["loss_mask"]

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

    def predict_masks(self, features: List[Tensor], results: List[Instances]) -> List[Instances]:
        """Set ``pred_masks`` ``(R, 1, M, M)`` (probabilities) on each image's final detections.

        Only the detections that survived the score threshold, NMS and the top-k reach the mask head,
        and the RoIs of all images go through it in one call. For a single image the class-agnostic
        probabilities are assigned directly: detectron2's ``mask_rcnn_inference`` splits the batch by
        per-image counts, which tracing would freeze into an exported graph.
        """
        mask_features = self.mask_pooler(
            [features[i] for i in self._mask_level_idx], [r.pred_boxes for r in results]
        )
        logits = self.mask_head.layers(mask_features)
        if len(results) == 1 and logits.shape[1] == 1:
            results[0].pred_masks = logits.sigmoid()
        else:
            mask_rcnn_inference(logits, results)
        return results
