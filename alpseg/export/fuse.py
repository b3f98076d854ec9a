"""Fold eval-mode batch norms into the convolutions before them (inference only).

detectron2's ``Conv2d`` applies its ``norm`` right after the convolution, so in eval mode
``norm(conv(x)) = conv'(x)`` with ``w' = w * s`` and ``b' = (b - mean) * s + beta`` per output
channel, ``s = gamma / sqrt(var + eps)``. Folding removes one pass over every activation and
changes outputs only by float rounding (about 2e-6 on the mask logits). On the loaded 2-core CPU
here it gave no reliable speed-up (two runs on the Hourglass-20: 0.86x and 1.04x of the unfolded
time, see docs/export.md), so it is opt-in (``tools/export_model.py --fold-batch-norms``); torch's
ONNX exporter folds eval-mode batch norms into the convs by itself. Per-level norms (``CycleBatchNormList`` in the
FCOS towers) are shared-conv / several-norm and cannot be folded; they are left as they are.
"""
from __future__ import annotations

import torch
from torch import nn

from detectron2.layers import Conv2d, FrozenBatchNorm2d

__all__ = ["fuse_conv_bn_"]


@torch.no_grad()
def fuse_conv_bn_(model: nn.Module) -> int:
    """Fold every ``BatchNorm2d`` / ``FrozenBatchNorm2d`` that is a detectron2 ``Conv2d``'s ``norm``
    into that conv, in place; returns how many were folded. ``model`` must be in eval mode and must
    not be trained afterwards (the batch-norm statistics become part of the weights)."""
    if model.training:
        raise ValueError("fuse_conv_bn_ needs a model in eval mode (call model.eval()); it is for inference only")
    fused = 0
    for module in model.modules():
        norm = getattr(module, "norm", None)
        if not isinstance(module, Conv2d) or not isinstance(norm, (nn.BatchNorm2d, FrozenBatchNorm2d)):
            continue
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        bias = module.bias if module.bias is not None else torch.zeros_like(norm.running_mean)
        module.weight = nn.Parameter(module.weight * scale.reshape(-1, 1, 1, 1), requires_grad=False)
        module.bias = nn.Parameter((bias - norm.running_mean) * scale + norm.bias, requires_grad=False)
        module.norm = None
        fused += 1
    return fused
