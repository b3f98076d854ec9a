"""Image lists, transforms and batched inference shared by the classification transfer tasks.

Preprocessing follows VirTex appendix A.1: evaluation images are resized (shorter edge 256) and
center-cropped (224); training images get a random crop of 20-100% of the area with aspect ratio
in [3/4, 4/3], resized to 224, and a random horizontal flip; all are normalised with the ImageNet
RGB mean / std. Sizes are parameters so that tests can run on tiny images.
"""
from __future__ import annotations

import hashlib
from typing import Callable, List, Mapping, Optional, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from alpseg.utils.device import pick_device  # re-exported: the transfer code's old name for it
from alpseg.utils.progress import progress_bar

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImageListDataset",
    "eval_transform",
    "train_transform",
    "pick_device",
    "extract_pooled_features",
    "weights_fingerprint",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def eval_transform(resize: int = 256, crop: int = 224) -> Callable:
    return T.Compose([T.Resize(resize), T.CenterCrop(crop), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def train_transform(crop: int = 224, min_scale: float = 0.2) -> Callable:
    return T.Compose([
        T.RandomResizedCrop(crop, scale=(min_scale, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0)),
        T.RandomHorizontalFlip(),
        T.ToTensor(),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


class ImageListDataset(Dataset):
    """(image tensor, label) pairs from a list of files; an unreadable file is an error naming it."""

    def __init__(self, paths: Sequence[str], labels: Optional[Sequence[int]], transform: Callable):
        self.paths = list(paths)
        self.labels = list(labels) if labels is not None else [-1] * len(self.paths)
        if len(self.labels) != len(self.paths):
            raise ValueError("paths and labels differ in length")
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        path = self.paths[i]
        try:
            with Image.open(path) as im:
                image = im.convert("RGB")
        except (OSError, ValueError) as e:
            raise OSError(f"cannot read image {path}: {e}") from e
        return self.transform(image), self.labels[i]


@torch.no_grad()
def extract_pooled_features(
    model: torch.nn.Module,
    paths: Sequence[str],
    transform: Callable,
    batch_size: int = 64,
    num_workers: int = 4,
    device: str = "auto",
    desc: str = "features",
) -> np.ndarray:
    """Run ``model`` (images -> (N, C)) over ``paths`` in order; returns float32 (len(paths), C)."""
    dev = pick_device(device)
    model = model.to(dev).eval()
    loader = DataLoader(ImageListDataset(paths, None, transform), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers, pin_memory=dev.type == "cuda")
    out: List[np.ndarray] = []
    for images, _ in progress_bar(loader, desc=desc, unit="batch", leave=False):
        out.append(model(images.to(dev, non_blocking=True)).float().cpu().numpy())
    if not out:
        return np.zeros((0, getattr(model, "out_channels", 0)), np.float32)
    return np.concatenate(out).astype(np.float32)


def weights_fingerprint(weights: Mapping[str, torch.Tensor]) -> str:
    """Content hash of a set of tensors (names, shapes, bytes): the key of every feature cache."""
    h = hashlib.sha256()
    for k in sorted(weights):
        v = weights[k].detach().cpu().contiguous()
        h.update(k.encode())
        h.update(str(tuple(v.shape)).encode())
        h.update(v.numpy().tobytes())
    return h.hexdigest()[:16]

