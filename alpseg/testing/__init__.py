"""Helpers shared by tests/ and bench/ (like detectron2's ``utils/testing.py``).

* **tiny models**: config overrides that turn a shipped config into a model that steps in about a
  second on one CPU core (:data:`TINY_MODEL_OPTS`, :func:`tiny_fcos_mo_overrides`,
  :func:`tiny_mask_rcnn_star_overrides`, :func:`tiny_fcos_mo_cfg`);
* **random phrase banks**: real bank files whose rows are seeded random unit vectors
  (:func:`random_phrase_bank`, :func:`write_random_phrase_bank`);
* **synthetic instances**: ``Instances`` with the fields the mapper hands the models (``gt_boxes``,
  ``gt_phrases``, ``gt_is_alp``, ``gt_has_mask``, ``gt_masks``) and batches of them
  (:func:`make_instances`, :func:`make_batch`, :func:`random_batch`).

``alpseg.testing.oid_reference`` is the plain reference implementation of the OID challenge metric.
Nothing here is used by the models or tools.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

__all__ = [
    "REPO_ROOT",
    "TEST_EMBED_DIM",
    "TEST_PHRASES",
    "TINY_MODEL_OPTS",
    "make_batch",
    "make_instances",
    "random_batch",
    "random_phrase_bank",
    "random_unit_rows",
    "repo_config",
    "tiny_fcos_mo_cfg",
    "tiny_fcos_mo_overrides",
    "tiny_mask_rcnn_star_overrides",
    "write_random_phrase_bank",
]

# the source checkout (configs/ is not part of the installed package; `make setup` installs editable)
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# phrases and phrase-space size of the hand-made model tests
TEST_PHRASES = ["dog", "cat", "small white dog", "tennis racket", "sombrero", "dolphin", "person", "car"]
TEST_EMBED_DIM = 8

# Overrides that turn any shipped config into a model that steps in about a second on one CPU core.
TINY_MODEL_OPTS = [
    "MODEL.DEVICE", "cpu",
    "MODEL.WEIGHTS", "",
    "MODEL.RESNETS.DEPTH", "18",
    "MODEL.RESNETS.RES2_OUT_CHANNELS", "64",
    "MODEL.RESNETS.NORM", "BN",
    "MODEL.FPN.OUT_CHANNELS", "32",
    "INPUT.MIN_SIZE_TRAIN", "(96,)",
    "INPUT.MAX_SIZE_TRAIN", "128",
    "INPUT.MIN_SIZE_TEST", "96",
    "INPUT.MAX_SIZE_TEST", "128",
    "SOLVER.IMS_PER_BATCH", "2",
    "DATALOADER.NUM_WORKERS", "0",
]


def repo_config(name: str) -> str:
    """Path of ``configs/<name>`` in the source checkout; a clear error where there is none."""
    path = os.path.join(REPO_ROOT, "configs", name)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} does not exist: alpseg.testing needs the source checkout's configs/ (install alpseg "
            "editable from the repository with `make setup`)"
        )
    return path


# ------------------------------------------------------------------------------------------ tiny models
def tiny_fcos_mo_overrides(bank_path: str = "") -> List[str]:
    """Turn any FCOS-MO config into a ResNet-18-like model with a 32-channel FPN and an 8-d phrase space.

    Norm layers keep each config's choice (SyncBN runs as plain BN in a single CPU process).
    """
    return [
        "MODEL.DEVICE", "cpu",
        "MODEL.WEIGHTS", "",
        "MODEL.RESNETS.DEPTH", "18",
        "MODEL.RESNETS.RES2_OUT_CHANNELS", "64",
        "MODEL.FPN.OUT_CHANNELS", "32",  # GroupNorm (Table 2 configs) needs multiples of 32
        "MODEL.FCOS_MO.NUM_CONVS", "2",
        "MODEL.ROI_MASK_HEAD.HOURGLASS_WIDTH", "32",
        "MODEL.ROI_MASK_HEAD.CONV_DIM", "32",
        "MODEL.OPEN_VOCAB.EMBED_DIM", str(TEST_EMBED_DIM),
        "MODEL.OPEN_VOCAB.PRETRAINED", "none",
        "MODEL.OPEN_VOCAB.EMBEDDINGS", bank_path,
        "MODEL.OPEN_VOCAB.TEST_VOCABULARY", "dog,cat,sombrero",
        "SOLVER.AMP.ENABLED", "False",
    ]


def tiny_fcos_mo_cfg(bank_path: str = ""):
    """The paper's base config (SyncBN in backbone, FPN, towers and mask head) at tiny size."""
    from alpseg.config import load_config

    return load_config(repo_config("Base-FCOS-MO.yaml"), tiny_fcos_mo_overrides(bank_path))


def tiny_mask_rcnn_star_overrides(bank_path: str, mode: Optional[str] = "boxes", frozen_norm: bool = False) -> List[str]:
    """A ResNet-18-sized Mask R-CNN* with 16-channel FPN, an 8-d phrase space and few proposals
    (``mode`` None keeps the config's ALP_SUPERVISION)."""
    return [
        "MODEL.DEVICE", "cpu",
        "MODEL.WEIGHTS", "",
        "MODEL.RESNETS.DEPTH", "18",
        "MODEL.RESNETS.RES2_OUT_CHANNELS", "64",
        # single process: nn.SyncBatchNorm runs as plain BN; FrozenBN makes images independent
        "MODEL.RESNETS.NORM", "FrozenBN" if frozen_norm else "SyncBN",
        "MODEL.FPN.NORM", "" if frozen_norm else "SyncBN",
        "MODEL.FPN.OUT_CHANNELS", "16",
        "MODEL.RPN.PRE_NMS_TOPK_TRAIN", "200",
        "MODEL.RPN.POST_NMS_TOPK_TRAIN", "40",
        "MODEL.RPN.PRE_NMS_TOPK_TEST", "200",
        "MODEL.RPN.POST_NMS_TOPK_TEST", "40",
        "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "32",
        "MODEL.ROI_BOX_HEAD.FC_DIM", "32",
        "MODEL.ROI_BOX_HEAD.CONV_DIM", "16",
        # the shipped head's synchronized BN mixes the RoIs of all images: off with frozen_norm too
        "MODEL.ROI_BOX_HEAD.NORM", "" if frozen_norm else "naiveSyncBN_N",
        "MODEL.ROI_MASK_HEAD.HOURGLASS_DEPTH", "10",
        "MODEL.ROI_MASK_HEAD.HOURGLASS_WIDTH", "8",
        "MODEL.ROI_MASK_HEAD.NORM", "" if frozen_norm else "BN",
        "MODEL.OPEN_VOCAB.EMBED_DIM", str(TEST_EMBED_DIM),
        "MODEL.OPEN_VOCAB.PRETRAINED", "none",
        "MODEL.OPEN_VOCAB.EMBEDDINGS", bank_path,
        "MODEL.OPEN_VOCAB.TEST_VOCABULARY", "dog,cat,sombrero",
        "INPUT.MIN_SIZE_TEST", "96",
        "INPUT.MAX_SIZE_TEST", "128",
        "SOLVER.AMP.ENABLED", "False",
    ] + ([] if mode is None else ["MODEL.MASK_RCNN_STAR.ALP_SUPERVISION", mode])


# ------------------------------------------------------------------------------------------ phrase banks
def random_unit_rows(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """``(n, dim)`` float32 rows drawn from ``numpy.random.RandomState(seed).randn``, L2-normalized."""
    emb = np.random.RandomState(seed).randn(n, dim).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return emb


def random_phrase_bank(phrases: Sequence[str], dim: int = 512, prompts: str = "vild", seed: int = 0,
                       encoder: Optional[str] = None):
    """A ``PhraseBank`` of ``phrases`` (in the given order) with :func:`random_unit_rows`.

    ``encoder`` defaults to the name of a ViT-B-32 text tower with random weights (``PRETRAINED none``),
    which is what the tiny configs name.
    """
    from alpseg.text.bank import PhraseBank
    from alpseg.text.encoder import encoder_id

    encoder = encoder_id("ViT-B-32", "none") if encoder is None else encoder
    return PhraseBank(list(phrases), random_unit_rows(len(phrases), dim, seed), encoder, prompts)


def write_random_phrase_bank(path: str, phrases: Sequence[str], dim: int = 512, prompts: str = "vild",
                             seed: int = 0) -> str:
    """Save :func:`random_phrase_bank` at ``path`` (atomically) and return ``path``."""
    random_phrase_bank(phrases, dim, prompts, seed).save(path)
    return path


# ------------------------------------------------------------------------------------------ instances
def make_instances(size, boxes, phrases, is_alp, has_mask):
    """Instances with the mapper's fields; masks fill the inner half of each masked box."""
    from detectron2.structures import BitMasks, Boxes, Instances

    h, w = size
    inst = Instances(size)
    inst.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    inst.gt_phrases = list(phrases)
    inst.gt_is_alp = torch.tensor(is_alp, dtype=torch.bool)
    inst.gt_has_mask = torch.tensor(has_mask, dtype=torch.bool)
    if any(has_mask):
        masks = torch.zeros(len(boxes), h, w, dtype=torch.bool)
        for i, (x0, y0, x1, y1) in enumerate(boxes):
            if has_mask[i]:
                cx, cy, bw, bh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 4, (y1 - y0) / 4
                masks[i, int(cy - bh):int(cy + bh), int(cx - bw):int(cx + bw)] = True
        inst.gt_masks = BitMasks(masks)
    return inst


def make_batch(instances, seed: int = 0) -> List[Dict]:
    """Training inputs: one random uint8-valued image per ``Instances`` (``torch.Generator`` seeded)."""
    gen = torch.Generator().manual_seed(seed)
    batch = []
    for inst in instances:
        h, w = inst.image_size
        batch.append({"image": torch.randint(0, 256, (3, h, w), generator=gen).float(), "instances": inst,
                      "height": h, "width": w})
    return batch


def random_batch(num_images: int, size, instances_per_image: int, num_classes: int, seed: int = 0) -> List[Dict]:
    """Images with random boxes; every instance has a box-filling mask, a class id and a phrase "class k"."""
    from detectron2.structures import BitMasks, Boxes, Instances

    rng = np.random.RandomState(seed)
    h, w = size
    batch = []
    for _ in range(num_images):
        xy = rng.uniform(0, 0.6, size=(instances_per_image, 2)) * [w, h]
        wh = rng.uniform(0.1, 0.4, size=(instances_per_image, 2)) * [w, h]
        boxes = torch.tensor(np.concatenate([xy, xy + wh], axis=1), dtype=torch.float32)
        classes = torch.tensor(rng.randint(0, num_classes, size=instances_per_image))
        masks = torch.zeros(instances_per_image, h, w, dtype=torch.bool)
        for i, (x0, y0, x1, y1) in enumerate(boxes.round().long().tolist()):
            masks[i, y0:y1, x0:x1] = True
        inst = Instances((h, w), gt_boxes=Boxes(boxes), gt_classes=classes, gt_masks=BitMasks(masks))
        inst.gt_phrases = [f"class {c}" for c in classes.tolist()]
        inst.gt_is_alp = torch.zeros(instances_per_image, dtype=torch.bool)
        inst.gt_has_mask = torch.ones(instances_per_image, dtype=torch.bool)
        image = torch.tensor(rng.randint(0, 256, size=(3, h, w)), dtype=torch.float32)
        batch.append({"image": image, "instances": inst, "height": h, "width": w})
    return batch
