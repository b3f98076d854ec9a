"""AlpsegDatasetMapper: dataset dict -> model input, for mixed mask / box / ALP supervision.

Like detectron2's ``DatasetMapper`` (read, check size, augment, convert annotations), with:

* **large-scale jitter** when ``INPUT.LSJ.ENABLED``: random flip, ``ResizeScale`` (x0.5-2.0 of the
  target) and ``FixedSizeCrop`` to an ``IMAGE_SIZE`` square, padded with the mean pixel (which the
  model's normalization maps to ~0, like its own padding) and masks padded with 0. At test time LSJ
  models see the image resized to fit ``IMAGE_SIZE`` (detectron2's LSJ recipe). Otherwise
  detectron2's ``ResizeShortestEdge`` + flip (+ ``INPUT.CROP``).
* **instance fields** of docs/architecture.md ("Dataset dicts and instance fields"): ``gt_boxes``, ``gt_phrases``, ``gt_is_alp``,
  ``gt_has_mask``, ``gt_classes`` (the annotation's ``category_id``, -1 when it has none) and, when any
  instance has a mask, ``gt_masks`` as ``BitMasks`` with all-zero rows for mask-less instances.
* **box quantization** of ALP boxes after the geometric transforms (:mod:`.box_quantization`), with
  ``L`` = shorter side of the image after resizing (before the crop, so the grid keeps the paper's
  scale invariance under LSJ) and the grid anchored at the output image's origin.
* instances emptied by the crop are dropped; an image may end with zero instances (valid ``Instances``
  of length 0, every field present except ``gt_masks``).
* ``image_phrases`` (image-level ALP records) and every other dict key pass through.
* an unreadable image (missing, corrupt, size mismatch) is skipped in training (``None`` makes
  detectron2's loaders draw another image), counted and logged; at test time it is an error.
"""
from __future__ import annotations

import copy
import logging
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import BitMasks, Boxes, Instances
from detectron2.structures.masks import polygons_to_bitmask

from .box_quantization import quantize_boxes, sample_quantization

__all__ = ["AlpsegDatasetMapper", "PhraseList", "build_alpseg_augmentation", "resized_short_side"]

logger = logging.getLogger(__name__)


class PhraseList(list):
    """A list of phrases that can also be indexed like a tensor (bool mask or index tensor/array),
    so that ``Instances`` holding ``gt_phrases`` can be sliced by models as usual."""

    def __getitem__(self, item):
        if isinstance(item, (torch.Tensor, np.ndarray)):
            item = torch.as_tensor(item)
            if item.dim() == 0 and item.dtype != torch.bool:
                return list.__getitem__(self, int(item))
            if item.dtype == torch.bool:
                item = item.nonzero().flatten()
            return PhraseList(list.__getitem__(self, int(i)) for i in item.reshape(-1).tolist())
        out = list.__getitem__(self, item)
        return PhraseList(out) if isinstance(item, slice) else out


def build_alpseg_augmentation(cfg, is_train: bool) -> List[T.Augmentation]:
    """Augmentations of the mapper (see the module docstring)."""
    lsj = cfg.INPUT.LSJ
    if not lsj.ENABLED:
        augs = utils.build_augmentation(cfg, is_train)
        if is_train and cfg.INPUT.CROP.ENABLED:
            augs.insert(0, T.RandomCrop(cfg.INPUT.CROP.TYPE, cfg.INPUT.CROP.SIZE))
        return augs
    size = int(lsj.IMAGE_SIZE)
    if not is_train:
        return [T.ResizeShortestEdge(size, size)]
    if not 0 < lsj.MIN_SCALE <= lsj.MAX_SCALE:
        raise ValueError(f"INPUT.LSJ scales must satisfy 0 < MIN_SCALE <= MAX_SCALE, got "
                         f"{lsj.MIN_SCALE}, {lsj.MAX_SCALE}")
    augs: List[T.Augmentation] = []
    if cfg.INPUT.RANDOM_FLIP != "none":
        augs.append(T.RandomFlip(horizontal=cfg.INPUT.RANDOM_FLIP == "horizontal",
                                 vertical=cfg.INPUT.RANDOM_FLIP == "vertical"))
    augs.append(T.ResizeScale(lsj.MIN_SCALE, lsj.MAX_SCALE, size, size))
    augs.append(T.FixedSizeCrop((size, size), pad=True, pad_value=float(np.mean(cfg.MODEL.PIXEL_MEAN)),
                                seg_pad_value=0))
    return augs


def resized_short_side(transforms: T.TransformList, original_size: Tuple[int, int]) -> float:
    """Shorter side of the image after the last resize in ``transforms`` (original if none)."""
    h, w = original_size
    for t in transforms.transforms:
        if isinstance(t, T.ResizeTransform):
            h, w = t.new_h, t.new_w
    return float(min(h, w))


class AlpsegDatasetMapper:
    """Map a detectron2 dataset dict (with alpseg's ``phrase`` / ``is_alp`` keys) to model input."""

    @configurable
    def __init__(self, is_train: bool, *, augmentations: Sequence, image_format: str,
                 box_quantization: Sequence[int] = (0,), use_instance_mask: bool = True,
                 recompute_boxes: bool = False, skip_unreadable: Optional[bool] = None):
        """
        Args:
            is_train: training mode (annotations become ``instances``) or test mode (dropped).
            augmentations: detectron2 augmentations, applied in order.
            image_format: e.g. "BGR" (``INPUT.FORMAT``).
            box_quantization: Q values sampled per ALP instance; 0 = leave the box as is.
            use_instance_mask: build ``gt_masks`` from segmentations (``MODEL.MASK_ON``).
            recompute_boxes: after cropping, replace boxes of masked instances by their masks' extent.
            skip_unreadable: skip (count, log, return None) unreadable images; default = ``is_train``.
        """
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.box_quantization = [int(q) for q in box_quantization]
        sample_quantization(0, self.box_quantization)  # validate now, not in a worker
        self.use_instance_mask = use_instance_mask
        self.recompute_boxes = recompute_boxes
        self.skip_unreadable = is_train if skip_unreadable is None else skip_unreadable
        self.num_skipped = 0
        logger.info("[AlpsegDatasetMapper] %s augmentations: %s; ALP box quantization Q in %s",
                    "train" if is_train else "test", augmentations, self.box_quantization)

    @classmethod
    def from_config(cls, cfg, is_train: bool = True) -> Dict:
        crops = is_train and (cfg.INPUT.LSJ.ENABLED or cfg.INPUT.CROP.ENABLED)
        return {
            "is_train": is_train,
            "augmentations": build_alpseg_augmentation(cfg, is_train),
            "image_format": cfg.INPUT.FORMAT,
            "box_quantization": list(cfg.INPUT.ALP.BOX_QUANTIZATION),
            "use_instance_mask": cfg.MODEL.MASK_ON,
            "recompute_boxes": bool(crops and cfg.MODEL.MASK_ON),
        }

    def _read(self, dataset_dict: Dict) -> Optional[np.ndarray]:
        try:
            image = utils.read_image(dataset_dict["file_name"], format=self.image_format)
            utils.check_image_size(dataset_dict, image)
            return image
        except (OSError, utils.SizeMismatchError) as e:
            if not self.skip_unreadable:
                raise type(e)(f"cannot use image {dataset_dict['file_name']!r}: {e}") from e
            self.num_skipped += 1
            logger.warning("skipped unreadable image %s (%s: %s); %d skipped so far in this process",
                           dataset_dict["file_name"], type(e).__name__, e, self.num_skipped)
            return None

    def __call__(self, dataset_dict: Dict) -> Optional[Dict]:
        dataset_dict = copy.deepcopy(dataset_dict)
        image = self._read(dataset_dict)
        if image is None:
            return None
        original_size = image.shape[:2]
        aug_input = T.AugInput(image)
        transforms = self.augmentations(aug_input)
        image = aug_input.image
        image_size = image.shape[:2]
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if not self.is_train:
            dataset_dict.pop("annotations", None)
            return dataset_dict
        annos = []
        for a in dataset_dict.pop("annotations", []):
            if a.get("iscrowd", 0) == 0:
                # float boxes: detectron2 resizes coordinates in place, truncating integer arrays
                a["bbox"] = [float(v) for v in a["bbox"]]
                annos.append(utils.transform_instance_annotations(a, transforms, image_size))
        dataset_dict["instances"] = self._instances(annos, image_size,
                                                    resized_short_side(transforms, original_size))
        return dataset_dict

    def _instances(self, annos: List[Dict], image_size: Tuple[int, int], short_side: float) -> Instances:
        h, w = image_size
        n = len(annos)
        for a in annos:
            if "phrase" not in a:
                raise KeyError("annotation without 'phrase': alpseg datasets add it (the class name of a mask or "
                               "box annotation); register other datasets through alpseg.data.datasets "
                               f"or add the key. Annotation: { {k: a[k] for k in a if k != 'segmentation'} }")
        boxes = np.array([a["bbox"] for a in annos], dtype=np.float64).reshape(n, 4)
        is_alp = np.array([bool(a.get("is_alp", False)) for a in annos], dtype=bool)
        has_mask = np.array([self.use_instance_mask and a.get("segmentation") is not None
                             and len(a["segmentation"]) > 0 for a in annos], dtype=bool)
        masks = None
        if has_mask.any():
            masks = np.zeros((n, h, w), dtype=bool)
            for i in np.flatnonzero(has_mask):
                segm = annos[i]["segmentation"]
                masks[i] = (polygons_to_bitmask(segm, h, w) if isinstance(segm, list) else np.asarray(segm) > 0)
            if self.recompute_boxes:
                boxes[has_mask] = BitMasks(torch.from_numpy(masks[has_mask])).get_bounding_boxes().tensor.numpy()
        keep = (boxes[:, 2] - boxes[:, 0] > 1e-5) & (boxes[:, 3] - boxes[:, 1] > 1e-5)
        if masks is not None:
            keep &= ~has_mask | masks.reshape(n, -1).any(axis=1)
        # Quantize only surviving ALP boxes: snapping a box squeezed onto the border by the crop would
        # pull it back into the image.
        alp = keep & is_alp
        if alp.any():
            q = sample_quantization(int(alp.sum()), self.box_quantization)
            boxes[alp] = quantize_boxes(boxes[alp], q, short_side, image_size)
        idx = np.flatnonzero(keep)
        inst = Instances(image_size)
        inst.gt_boxes = Boxes(torch.as_tensor(boxes[idx], dtype=torch.float32).reshape(-1, 4))
        inst.gt_phrases = PhraseList(annos[i]["phrase"] for i in idx)
        inst.gt_is_alp = torch.as_tensor(is_alp[idx], dtype=torch.bool)
        inst.gt_has_mask = torch.as_tensor(has_mask[idx], dtype=torch.bool)
        inst.gt_classes = torch.tensor([int(annos[i].get("category_id", -1)) for i in idx], dtype=torch.int64)
        if masks is not None and has_mask[idx].any():
            inst.gt_masks = BitMasks(torch.from_numpy(masks[idx]))
        return inst
