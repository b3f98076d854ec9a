"""Epoch-based image classification on a converted ResNet trunk (linear probe and fine-tuning).

One loop serves both protocols of VirTex: the ImageNet-1k linear probe (frozen trunk, only a linear
layer trains) and iNaturalist 2018 fine-tuning (everything trains). It is resumable at epoch
granularity (model, optimizer, schedule and history are written atomically after every epoch) and
reproducible (the shuffle and the augmentation of epoch ``e`` depend only on ``seed`` and ``e``, so
a resumed run equals an uninterrupted one). It runs in every process that detectron2's ``launch``
starts: with several processes the trainable part is wrapped in DDP, the training set is sharded by
``DistributedSampler`` and evaluation counts are summed over processes. ``batch_size`` is the total
over processes and the learning rate is ``base_lr * batch_size / 256`` (the papers' batch size).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import torch
import torch.distributed as dist
from detectron2.data.samplers import InferenceSampler
from detectron2.utils import comm
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from alpseg.utils.device import pick_device
from alpseg.utils.io import atomic_open
from alpseg.utils.progress import progress_bar

from .backbone import PooledResNet, build_resnet_trunk
from .images import ImageListDataset, eval_transform, train_transform, weights_fingerprint

__all__ = [
    "ClassificationSettings",
    "LinearClassifier",
    "image_folder_samples",
    "inat_samples",
    "lr_factor",
    "train_classifier",
]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class ClassificationSettings:
    """Optimisation and preprocessing of one classification protocol."""

    epochs: int = 100
    batch_size: int = 256  # total over processes
    base_lr: float = 0.3  # at batch size 256
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"  # "cosine" (to zero) or "step"
    lr_steps: Tuple[int, ...] = ()  # epochs at which "step" multiplies the LR by ``gamma``
    gamma: float = 0.1
    crop: int = 224
    resize: int = 256
    min_scale: float = 0.2  # random crops cover 20-100% of the image
    num_workers: int = 8
    eval_batch_size: int = 256
    device: str = "auto"
    seed: int = 0


def lr_factor(iteration: int, iters_per_epoch: int, s: ClassificationSettings) -> float:
    """LR multiplier at ``iteration``: per-iteration cosine to zero, or epoch steps."""
    if s.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * iteration / (s.epochs * iters_per_epoch)))
    if s.schedule == "step":
        epoch = iteration // iters_per_epoch
        return s.gamma ** sum(1 for step in s.lr_steps if epoch >= step)
    raise ValueError(f"unknown schedule {s.schedule!r}; 'cosine' or 'step'")


# ------------------------------------------------------------------------------------------------
# data


def image_folder_samples(root: str) -> Tuple[List[str], List[int], List[str]]:
    """(paths, labels, class names) of a torchvision ``ImageFolder`` tree (classes sorted)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    if not os.path.isdir(root):
        raise FileNotFoundError(f"image folder {root} does not exist")
    classes, class_to_idx = find_classes(root)
    samples = make_dataset(root, class_to_idx, extensions=IMG_EXTENSIONS)
    return [p for p, _ in samples], [c for _, c in samples], classes


def inat_samples(json_path: str, image_root: str) -> Tuple[List[str], List[int], List[str]]:
    """(paths, labels, class names) of an iNaturalist 2018 JSON; labels index sorted category ids."""
    with open(json_path, encoding="utf-8") as f:
        data = json.load(f)
    cats = sorted(data["categories"], key=lambda c: c["id"])
    index = {c["id"]: i for i, c in enumerate(cats)}
    label_of: Dict[Any, int] = {}
    for ann in data["annotations"]:
        if ann["category_id"] not in index:
            raise ValueError(f"{json_path}: annotation {ann.get('id')} has unknown category {ann['category_id']}")
        label_of[ann["image_id"]] = index[ann["category_id"]]
    unlabeled = [im["id"] for im in data["images"] if im["id"] not in label_of]
    if unlabeled:
        raise ValueError(f"{json_path}: {len(unlabeled)} images without annotation, e.g. {unlabeled[:3]}")
    paths = [os.path.join(image_root, im["file_name"]) for im in data["images"]]
    return paths, [label_of[im["id"]] for im in data["images"]], [c["name"] for c in cats]


# ------------------------------------------------------------------------------------------------
# model


class LinearClassifier(nn.Module):
    """Pooled trunk + linear layer (weights N(0, 0.01), bias 0, as in VirTex A.1).

    With ``freeze_trunk`` the trunk never trains: no gradients, always in eval mode (frozen BN).
    """

    def __init__(self, trunk: PooledResNet, num_classes: int, freeze_trunk: bool, seed: int = 0):
        super().__init__()
        self.trunk = trunk
        self.freeze_trunk = freeze_trunk
        self.head = nn.Linear(trunk.out_channels, num_classes)
        nn.init.normal_(self.head.weight, 0.0, 0.01, generator=torch.Generator().manual_seed(seed))
        nn.init.zeros_(self.head.bias)
        if freeze_trunk:
            self.trunk.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_trunk:
            self.trunk.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.freeze_trunk:
            with torch.no_grad():
                feats = self.trunk(images)
        else:
            feats = self.trunk(images)
        return self.head(feats)


def build_classifier(weights: Mapping[str, torch.Tensor], num_classes: int, freeze_trunk: bool,
                     arch: str = "resnet50", seed: int = 0) -> LinearClassifier:
    """Frozen BN for the probe; BN (SyncBN with several processes) when fine-tuning."""
    norm = "FrozenBN" if freeze_trunk else ("SyncBN" if comm.get_world_size() > 1 else "BN")
    trunk = PooledResNet(build_resnet_trunk(weights, arch, norm=norm))
    return LinearClassifier(trunk, num_classes, freeze_trunk, seed)


# ------------------------------------------------------------------------------------------------
# loop


@torch.no_grad()
def evaluate(model: nn.Module, paths: Sequence[str], labels: Sequence[int], s: ClassificationSettings,
             device: torch.device) -> Dict[str, float]:
    """Top-1 / top-5 accuracy (percent) over the whole list, summed across processes."""
    model.eval()
    dataset = ImageListDataset(paths, labels, eval_transform(s.resize, s.crop))
    loader = DataLoader(dataset, batch_size=max(1, s.eval_batch_size // comm.get_world_size()),
                        sampler=InferenceSampler(len(dataset)), num_workers=s.num_workers)
    counts = torch.zeros(3, dtype=torch.float64, device=device)  # top1, top5, n
    bar = progress_bar(loader, desc="evaluate", unit="batch", leave=False, disable=not comm.is_main_process())
    for images, targets in bar:
        logits = model(images.to(device))
        targets = targets.to(device)
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        counts[0] += (top[:, 0] == targets).sum()
        counts[1] += (top == targets[:, None]).any(dim=1).sum()
        counts[2] += len(targets)
    if comm.get_world_size() > 1:
        dist.all_reduce(counts)
    return {"top1": float(100 * counts[0] / counts[2]), "top5": float(100 * counts[1] / counts[2])}


def train_classifier(
    model: LinearClassifier,
    train: Tuple[Sequence[str], Sequence[int]],
    val: Tuple[Sequence[str], Sequence[int]],
    output_dir: str,
    s: ClassificationSettings,
    resume: bool = True,
    run_key: str = "",
) -> Dict[str, Any]:
    """Train for ``s.epochs`` (continuing from ``output_dir/last.pth`` when ``resume``), then
    evaluate on ``val``. Returns ``{"metrics": {"top1", "top5"}, "history": [...]}``.

    ``run_key`` (backbone and settings) is stored in ``last.pth``; a checkpoint of another key is
    never continued (it would carry another backbone's trunk and history): training starts fresh."""
    device = pick_device(s.device)
    model.to(device)
    world = comm.get_world_size()
    if s.batch_size % world:
        raise ValueError(f"batch size {s.batch_size} is not divisible by {world} processes")
    trainable = [p for p in model.parameters() if p.requires_grad]
    lr = s.base_lr * s.batch_size / 256
    # weight decay on every trainable tensor, as torchvision's reference recipe does
    optimizer = torch.optim.SGD(trainable, lr=lr, momentum=s.momentum, weight_decay=s.weight_decay)
    train_set = ImageListDataset(train[0], train[1], train_transform(s.crop, s.min_scale))
    per_process = s.batch_size // world
    iters_per_epoch = len(train_set) // s.batch_size
    if iters_per_epoch == 0:
        raise ValueError(f"{len(train_set)} training images are fewer than one batch of {s.batch_size}")
    ddp_model: nn.Module = model
    if world > 1:
        ddp_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False)
    os.makedirs(output_dir, exist_ok=True)
    ckpt_path = os.path.join(output_dir, "last.pth")
    start_epoch, history = 0, []
    state = None
    if resume and os.path.isfile(ckpt_path):
        state = torch.load(ckpt_path, map_location=device, weights_only=True)
    if state is not None and state.get("key", "") != run_key:
        logger.warning("%s was written for another backbone or settings (key %r, now %r): starting fresh",
                       ckpt_path, state.get("key", ""), run_key)
        state = None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, history = state["epoch"], state["history"]
        logger.info("resumed %s at epoch %d", ckpt_path, start_epoch)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(start_epoch, s.epochs):
        torch.manual_seed(s.seed * 100003 + epoch)  # augmentation when loading in this process
        generator = torch.Generator().manual_seed(s.seed * 100003 + epoch)
        if world > 1:
            sampler = DistributedSampler(train_set, shuffle=True, seed=s.seed, drop_last=True)
            sampler.set_epoch(epoch)
            loader = DataLoader(train_set, batch_size=per_process, sampler=sampler, num_workers=s.num_workers,
                                drop_last=True, generator=generator, pin_memory=device.type == "cuda")
        else:
            loader = DataLoader(train_set, batch_size=per_process, shuffle=True, num_workers=s.num_workers,
                                drop_last=True, generator=generator, pin_memory=device.type == "cuda")
        ddp_model.train()
        total, seen = 0.0, 0
        bar = progress_bar(loader, desc=f"epoch {epoch + 1}/{s.epochs}", unit="batch", leave=False,
                   disable=not comm.is_main_process())
        for i, (images, targets) in enumerate(bar):
            for group in optimizer.param_groups:
                group["lr"] = lr * lr_factor(epoch * iters_per_epoch + i, iters_per_epoch, s)
            loss = loss_fn(ddp_model(images.to(device, non_blocking=True)), targets.to(device, non_blocking=True))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss) * len(targets)
            seen += len(targets)
            bar.set_postfix(loss=f"{total / seen:.4f}")
        history.append({"epoch": epoch + 1, "loss": total / max(seen, 1), "lr_end": optimizer.param_groups[0]["lr"]})
        if comm.is_main_process():
            with atomic_open(ckpt_path, "wb") as f:
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1,
                            "history": history, "key": run_key}, f)
        comm.synchronize()
    metrics = evaluate(model, val[0], val[1], s, device)
    return {"metrics": metrics, "history": history, "num_images": {"train": len(train[0]), "val": len(val[0])},
            "lr": lr}


Samples = Tuple[List[str], List[int], List[str]]  # paths, labels, class names


def run_protocol(
    weights: Mapping[str, torch.Tensor],
    train: Samples,
    val: Samples,
    output_dir: str,
    s: ClassificationSettings,
    freeze_trunk: bool,
    arch: str = "resnet50",
    resume: bool = True,
) -> Dict[str, Any]:
    """Build the classifier for ``train``'s classes, train it and evaluate on ``val``."""
    if val[2] != train[2]:
        raise ValueError(f"validation classes differ from training classes ({len(val[2])} vs {len(train[2])})")
    model = build_classifier(weights, len(train[2]), freeze_trunk=freeze_trunk, arch=arch, seed=s.seed)
    key = f"{weights_fingerprint(weights)}-{arch}-{freeze_trunk}-" + repr(sorted(dataclasses.asdict(s).items()))
    result = train_classifier(model, train[:2], val[:2], output_dir, s, resume, run_key=key)
    result["num_classes"] = len(train[2])
    return result
