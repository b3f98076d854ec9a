"""FCOSMask: detectron2's closed-vocabulary FCOS plus a mask head (the paper's Table 2).

Table 2 checks the re-implementation on fully supervised COCO: plain FCOS, then "+ mask head",
"+ 3x", "+ SyncBN, LSJ". Every row is FCOS's own classifier (one sigmoid per dataset class, focal
loss), so this meta-architecture is detectron2's :class:`~detectron2.modeling.meta_arch.fcos.FCOS`
unchanged (matching, focal / GIoU / centerness losses, decoding, NMS) with two additions that
FCOS-MO shares (:class:`FCOSMO` subclasses this class):

* the **size ranges** of the FPN levels come from ``MODEL.FCOS_MO.SIZE_RANGES`` (detectron2 hard-codes
  4 and 8 strides, which is the same 64/128/256/512 for P3-P7);
* an optional **mask head** (any ``ROI_MASK_HEAD_REGISTRY`` head, Hourglass-20 by default) trained on
  RoIAlign'ed FPN features of ground-truth boxes with masks and run on the final boxes at test time.

Training instances need ``gt_classes`` in ``[0, MODEL.FCOS_MO.NUM_CLASSES)`` (detectron2's COCO
dicts and alpseg's mapper provide them); ALPs have no class and are refused.
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence

import torch
from torch import Tensor, nn

from detectron2.config import configurable
from detectron2.layers import ShapeSpec, get_norm
from detectron2.modeling import META_ARCH_REGISTRY, build_backbone
from detectron2.modeling.backbone import Backbone
from detectron2.modeling.meta_arch.fcos import FCOS, FCOSHead
from detectron2.modeling.poolers import ROIPooler
from detectron2.modeling.roi_heads.mask_head import build_mask_head
from detectron2.structures import Boxes, ImageList, Instances, pairwise_point_box_distance

from ..ema import PersistentEMAMixin
from ..instance_fields import gt_has_mask, gt_is_alp
from ..roi_heads.mask_inference import predict_masks

__all__ = ["FCOSMask", "dense_head_norm", "dense_detector_kwargs"]


def dense_head_norm(norm: str, per_level_norm: bool):
    """The ``norm`` argument of detectron2's ``RetinaNetHead``/``FCOSHead``.

    detectron2 gives "BN"/"SyncBN" heads one set of statistics per FPN level; a callable makes the
    head share one norm layer across levels instead (``PER_LEVEL_NORM: False``).
    """
    if not per_level_norm and norm in ("BN", "SyncBN"):
        return lambda c: get_norm(norm, c)
    return norm


def dense_detector_kwargs(cfg) -> Dict[str, Any]:
    """The constructor arguments FCOSMask and FCOSMO read alike from ``cfg`` (head excluded).

    Also returns ``feature_shapes`` (the head's input shapes), which the callers pop to build their head.
    """
    backbone = build_backbone(cfg)
    shapes = backbone.output_shape()
    mo = cfg.MODEL.FCOS_MO
    in_features = list(mo.IN_FEATURES)
    missing = [f for f in in_features if f not in shapes]
    if missing:
        raise ValueError(f"MODEL.FCOS_MO.IN_FEATURES {missing} not produced by the backbone ({sorted(shapes)})")
    ret: Dict[str, Any] = {
        "backbone": backbone,
        "feature_shapes": [shapes[f] for f in in_features],
        "head_in_features": in_features,
        "pixel_mean": cfg.MODEL.PIXEL_MEAN,
        "pixel_std": cfg.MODEL.PIXEL_STD,
        "size_ranges": mo.SIZE_RANGES,
        "center_sampling_radius": mo.CENTER_SAMPLING_RADIUS,
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


@META_ARCH_REGISTRY.register()
class FCOSMask(PersistentEMAMixin, FCOS):
    """detectron2's FCOS with configurable level size ranges and an optional mask head (module docstring).

    Its loss normaliser is detectron2's EMA, kept in the checkpoint (``PersistentEMAMixin``) so that
    ``--resume`` continues it exactly.
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        head: nn.Module,
        head_in_features: List[str],
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        num_classes: int,
        size_ranges: Sequence[float] = (64, 128, 256, 512),
        center_sampling_radius: float = 1.5,
        focal_loss_alpha: float = 0.25,
        focal_loss_gamma: float = 2.0,
        mask_pooler: ROIPooler = None,
        mask_head: nn.Module = None,
        mask_in_features: Sequence[str] = (),
        test_score_thresh: float = 0.05,
        test_topk_candidates: int = 1000,
        test_nms_thresh: float = 0.6,
        max_detections_per_image: int = 100,
    ):
        """
        Args:
            size_ranges: object-size boundaries between consecutive levels (len(levels) - 1 values).
            mask_pooler, mask_head: both None for a detector without masks (Table 2, first row).
            mask_in_features: the FPN levels (among ``head_in_features``) the mask pooler reads.
            Other arguments: as in detectron2's :class:`FCOS`.
        """
        super().__init__(
            backbone=backbone,
            head=head,
            head_in_features=head_in_features,
            num_classes=num_classes,
            center_sampling_radius=center_sampling_radius,
            focal_loss_alpha=focal_loss_alpha,
            focal_loss_gamma=focal_loss_gamma,
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
        ret = dense_detector_kwargs(cfg)
        mo = cfg.MODEL.FCOS_MO
        if not mo.CENTERNESS:
            raise ValueError("FCOSMask is detectron2's FCOS, which always predicts centerness: "
                             "MODEL.FCOS_MO.CENTERNESS False is an FCOSMO ablation")
        feature_shapes = ret.pop("feature_shapes")
        ret["head"] = FCOSHead(
            input_shape=feature_shapes,
            conv_dims=[feature_shapes[0].channels] * mo.NUM_CONVS,
            num_classes=mo.NUM_CLASSES,
            norm=dense_head_norm(mo.NORM, mo.PER_LEVEL_NORM),
            prior_prob=mo.PRIOR_PROB,
        )
        ret.update(num_classes=mo.NUM_CLASSES, focal_loss_alpha=mo.FOCAL_LOSS_ALPHA,
                   focal_loss_gamma=mo.FOCAL_LOSS_GAMMA)
        return ret

    # ------------------------------------------------------------------ matching
    @torch.no_grad()
    def _match_anchors(self, gt_boxes: Boxes, anchors: List[Boxes]) -> Tensor:
        """detectron2's FCOS rule (center sampling, point inside the box, smaller boxes win) with the
        size ranges of ``MODEL.FCOS_MO.SIZE_RANGES``.

        detectron2 gives a level no size bound when it is both the first and the last level, so each
        level is matched alone by :meth:`FCOS._match_anchors`, then the configured size range of each
        level (the box's largest point-to-edge distance, exclusive bounds) is applied.
        """
        quality = torch.cat([super(FCOSMask, self)._match_anchors(gt_boxes, [a]) for a in anchors], dim=1)
        bounds = [0.0] + self.size_ranges + [float("inf")]
        device = quality.device
        lower = torch.cat([torch.full((len(a),), bounds[i], device=device) for i, a in enumerate(anchors)])
        upper = torch.cat([torch.full((len(a),), bounds[i + 1], device=device) for i, a in enumerate(anchors)])
        reach = pairwise_point_box_distance(Boxes.cat(anchors).get_centers(), gt_boxes).max(dim=2).values.t()
        return quality * ((reach > lower[None, :]) & (reach < upper[None, :]))

    # ------------------------------------------------------------------ mask head
    def _mask_loss(self, features: List[Tensor], gt_instances: List[Instances]) -> Tensor:
        """Mask head on GT boxes of instances with masks (Deep-MARC trains on GT boxes only)."""
        rois = []
        for inst in gt_instances:
            # Index fields one by one: Instances cannot index its list-valued gt_phrases.
            has_mask = gt_has_mask(inst, self.device)
            roi = Instances(inst.image_size)
            roi.proposal_boxes = inst.gt_boxes[has_mask]
            if has_mask.any():
                if not inst.has("gt_masks"):
                    raise KeyError("instances marked gt_has_mask carry no gt_masks (docs/architecture.md, instance fields)")
                roi.gt_masks = inst.gt_masks[has_mask]
            rois.append(roi)
        mask_features = self.mask_pooler(
            [features[i] for i in self._mask_level_idx], [r.proposal_boxes for r in rois]
        )
        return self.mask_head(mask_features, rois)["loss_mask"]

    def predict_masks(self, features: List[Tensor], results: List[Instances]) -> List[Instances]:
        """Set ``pred_masks`` ``(R, 1, M, M)`` (probabilities) on each image's final detections.

        Only the detections that survived the score threshold, NMS and the top-k reach the mask head,
        the RoIs of all images in one call, and one RoI per distinct box (a box kept for several
        phrases gets one mask; :func:`alpseg.modeling.roi_heads.mask_inference.predict_masks`).
        """
        return predict_masks(self.mask_pooler, self.mask_head, [features[i] for i in self._mask_level_idx], results)

    # ------------------------------------------------------------------ training / inference
    def forward_training(self, images: ImageList, features: List[Tensor], predictions, gt_instances: List[Instances]):
        for inst in gt_instances:
            if not inst.has("gt_classes"):
                raise KeyError("FCOSMask (closed vocabulary) needs gt_classes on every training instance")
            if bool(gt_is_alp(inst).any()) or (len(inst) and int(inst.gt_classes.min()) < 0):
                raise ValueError("FCOSMask is closed-vocabulary: ALPs / instances without a class (gt_classes -1) "
                                 "cannot train it; use META_ARCHITECTURE FCOSMO")
            if len(inst) and int(inst.gt_classes.max()) >= self.num_classes:
                raise ValueError(f"gt_classes {int(inst.gt_classes.max())} is not below MODEL.FCOS_MO.NUM_CLASSES "
                                 f"({self.num_classes}): set it to the training dataset's class count")
        losses = super().forward_training(images, features, predictions, gt_instances)
        if self.mask_head is not None:
            losses["loss_mask"] = self._mask_loss(features, gt_instances)
        return losses

    def forward_inference(self, images: ImageList, features: List[Tensor], predictions):
        results = super().forward_inference(images, features, predictions)
        if self.mask_head is not None:
            self.predict_masks(features, results)
        return results
