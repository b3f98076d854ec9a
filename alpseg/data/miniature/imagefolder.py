"""Miniature classification trees for the transfer suite: an ImageNet-style ImageFolder and iNat18.

``write_miniature_imagefolder(root)`` writes ``root/{train,val}/<class>/*.jpg`` (the layout
torchvision's ``ImageFolder`` reads, and the one ImageNet is usually unpacked to);
``write_miniature_inat(root)`` writes ``root/train_val2018/<supercategory>/<id>/*.jpg`` with the
iNaturalist 2018 ``train2018.json`` / ``val2018.json`` (COCO-like ``images``, ``annotations`` with
``category_id``, ``categories``). Each image shows one object of its class from the miniature
world's renderer; the result is a pure function of the seed.
"""
from __future__ import annotations

import os
from typing import Dict, List, Sequence, Tuple

import numpy as np

from .world import CLASSES, MiniClass, sample_scene
from .writers import write_image, write_json

__all__ = ["write_miniature_imagefolder", "write_miniature_inat"]


def _one_object_images(
    classes: Sequence[MiniClass], per_class: int, size: int, seed: int, split_seed: int
) -> List[Tuple[int, int, object]]:
    """(class index, index within class, scene) for ``per_class`` images of each class."""
    rng = np.random.default_rng([seed, split_seed])
    out = []
    for ci, cls in enumerate(classes):
        for k in range(per_class):
            scene = sample_scene(rng, [cls], size, size, num_objects=(1, 1), size_range=(size * 0.35, size * 0.7),
                                 seed=seed * 1000003 + split_seed * 10007 + ci * 1009 + k)
            out.append((ci, k, scene))
    return out


def write_miniature_imagefolder(
    root: str,
    seed: int = 0,
    num_classes: int = 4,
    train_per_class: int = 8,
    val_per_class: int = 4,
    image_size: int = 64,
) -> Dict[str, List[str]]:
    """Write ``root/{train,val}/<class>/<class>_<k>.jpg``; returns the class folder names."""
    if not 2 <= num_classes <= len(CLASSES):
        raise ValueError(f"num_classes must be in [2, {len(CLASSES)}]")
    classes = CLASSES[:num_classes]
    for split, per_class, split_seed in (("train", train_per_class, 81), ("val", val_per_class, 82)):
        for ci, k, scene in _one_object_images(classes, per_class, image_size, seed, split_seed):
            name = classes[ci].name
            write_image(os.path.join(root, split, name, f"{name}_{split}_{k:04d}.jpg"), scene)
    return {"classes": [c.name for c in classes]}


def write_miniature_inat(
    root: str,
    seed: int = 0,
    num_classes: int = 4,
    train_per_class: int = 8,
    val_per_class: int = 4,
    image_size: int = 64,
) -> Dict[str, str]:
    """Write an iNaturalist-2018-format tree under ``root``; returns the two JSON paths."""
    if not 2 <= num_classes <= len(CLASSES):
        raise ValueError(f"num_classes must be in [2, {len(CLASSES)}]")
    classes = CLASSES[:num_classes]
    categories = [{"id": i, "name": c.name, "supercategory": "Miniatura"} for i, c in enumerate(classes)]
    paths = {}
    next_id = 1
    for split, per_class, split_seed in (("train", train_per_class, 91), ("val", val_per_class, 92)):
        images, annotations = [], []
        for ci, k, scene in _one_object_images(classes, per_class, image_size, seed, split_seed):
            file_name = f"train_val2018/Miniatura/{ci}/{split}_{k:04d}.jpg"
            write_image(os.path.join(root, file_name), scene)
            images.append({"id": next_id, "file_name": file_name, "width": image_size, "height": image_size,
                           "license": 0, "rights_holder": "alpseg miniature"})
            annotations.append({"id": next_id, "image_id": next_id, "category_id": ci})
            next_id += 1
        path = os.path.join(root, f"{split}2018.json")
        write_json(path, {"info": {"description": "alpseg miniature iNat2018"}, "images": images,
                          "annotations": annotations, "categories": categories, "licenses": []})
        paths[split] = path
    return paths

