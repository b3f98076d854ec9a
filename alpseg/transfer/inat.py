"""iNaturalist 2018 fine-grained classification by end-to-end fine-tuning (VirTex sec. 4.3).

The pretrained ResNet-50 plus a linear layer (8142 classes) is fine-tuned end to end following
torchvision's ImageNet recipe: 100 epochs, SGD with momentum 0.9, weight decay 1e-4, batch size 256,
LR 0.025 (0.1 for a randomly initialised network) multiplied by 0.1 at epochs 70 and 90; the same
augmentation and linear-layer initialisation as the linear probe; no class-balanced resampling.
Data: the official ``train2018.json`` / ``val2018.json`` with image paths relative to the root.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Optional

import torch

from .classify import ClassificationSettings, inat_samples, run_protocol

__all__ = ["inat_settings", "run_inat"]


def inat_settings(**overrides: Any) -> ClassificationSettings:
    base = dict(epochs=100, batch_size=256, base_lr=0.025, momentum=0.9, weight_decay=1e-4, schedule="step",
                lr_steps=(70, 90), gamma=0.1)
    return ClassificationSettings(**{**base, **overrides})


def run_inat(
    weights: Mapping[str, torch.Tensor],
    inat_root: str,
    output_dir: str,
    settings: Optional[ClassificationSettings] = None,
    arch: str = "resnet50",
    resume: bool = True,
) -> Dict[str, Any]:
    train = inat_samples(os.path.join(inat_root, "train2018.json"), inat_root)
    val = inat_samples(os.path.join(inat_root, "val2018.json"), inat_root)
    return run_protocol(weights, train, val, output_dir, settings or inat_settings(), freeze_trunk=False,
                        arch=arch, resume=resume)
