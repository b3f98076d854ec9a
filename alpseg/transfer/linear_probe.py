"""ImageNet-1k linear probe on a frozen backbone (VirTex sec. 4.1 and app. A.1; MoCo / SwAV style).

A linear layer on the 2048-d global-average-pooled res5 features of the frozen backbone (frozen BN
statistics), trained with softmax cross-entropy for 100 epochs, SGD (momentum 0.9, weight decay 0),
LR 0.3 at batch size 256 decayed to zero by a cosine schedule; random 20-100% crops with flips for
training, shorter-edge 256 / center-crop 224 for evaluation; top-1 accuracy on val. The data is an
``ImageFolder`` tree: ``<root>/train/<wnid>/*.JPEG`` and ``<root>/val/<wnid>/*.JPEG``.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Optional

import torch

from .classify import ClassificationSettings, image_folder_samples, run_protocol

__all__ = ["linear_probe_settings", "run_linear_probe"]


def linear_probe_settings(**overrides: Any) -> ClassificationSettings:
    """The protocol's settings, with ``overrides`` (e.g. ``epochs=2`` for a smoke run)."""
    base = dict(epochs=100, batch_size=256, base_lr=0.3, momentum=0.9, weight_decay=0.0, schedule="cosine")
    return ClassificationSettings(**{**base, **overrides})


def run_linear_probe(
    weights: Mapping[str, torch.Tensor],
    imagenet_root: str,
    output_dir: str,
    settings: Optional[ClassificationSettings] = None,
    arch: str = "resnet50",
    resume: bool = True,
) -> Dict[str, Any]:
    train = image_folder_samples(os.path.join(imagenet_root, "train"))
    val = image_folder_samples(os.path.join(imagenet_root, "val"))
    return run_protocol(weights, train, val, output_dir, settings or linear_probe_settings(), freeze_trunk=True,
                        arch=arch, resume=resume)
