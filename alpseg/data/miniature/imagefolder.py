"""Miniature classification trees for the transfer suite: an ImageNet-style ImageFolder and iNat18.

``write_miniature_imagefolder(root)`` writes ``root/{train,val}/<class>/*.jpg`` (the layout
torchvision's ``ImageFolder`` reads, and the one ImageNet is usually unpacked to);
``write_miniature_inat(root)`` writes ``root/train_val2018/<supercategory>/<id>/*.jpg`` with the
iNaturalist 2018 ``train2018.json`` / ``val2018.json`` (COCO-like ``images``, ``annotations`` with
``category_id``, ``categories``). Each image shows one object of its class from the miniature
world's renderer; the result is a pure function of the seed.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from .world import CLASSES, MiniClass, Scene, sample_scene
from alpseg.utils.io import atomic_write_json

from .writers import write_image

__all__ = ["ClassificationSizes", "write_miniature_imagefolder", "write_miniature_inat"]


@dataclasses.dataclass
class ClassificationSizes:
    """How many classes and images a miniature classification tree has."""

    num_classes: int = 4
    train_per_class: int = 8
    val_per_class: int = 4
    image_size: int = 64


def _one_object_images(
    sizes: Optional[ClassificationSizes], seed: int, split_seeds: Tuple[int, int]
) -> Iterator[Tuple[str, int, MiniClass, int, Scene]]:
    """(split, class index, class, index within class, scene): one object per image."""
    sizes = sizes or ClassificationSizes()
    if not 2 <= sizes.num_classes <= len(CLASSES):
        raise ValueError(f"num_classes must be in [2, {len(CLASSES)}]")
    s = sizes.image_size
    for split, per_class, split_seed in (("train", sizes.train_per_class, split_seeds[0]),
                                         ("val", sizes.val_per_class, split_seeds[1])):
        rng = np.random.default_rng([seed, split_seed])
        for ci, cls in enumerate(CLASSES[:sizes.num_classes]):
            for k in range(per_class):
                scene = sample_scene(rng, [cls], s, s, num_objects=(1, 1), size_range=(s * 0.35, s * 0.7),
                                     seed=seed * 1000003 + split_seed * 10007 + ci * 1009 + k)
                yield split, ci, cls, k, scene


def write_miniature_imagefolder(root: str, seed: int = 0, sizes: Optional[ClassificationSizes] = None) -> List[str]:
    """Write ``root/{train,val}/<class>/<class>_<split>_<k>.jpg``; returns the class folder names."""
    names = set()
    for split, _, cls, k, scene in _one_object_images(sizes, seed, (81, 82)):
        write_image(os.path.join(root, split, cls.name, f"{cls.name}_{split}_{k:04d}.jpg"), scene)
        names.add(cls.name)
    return sorted(names)


def write_miniature_inat(root: str, seed: int = 0, sizes: Optional[ClassificationSizes] = None) -> Dict[str, str]:
    """Write an iNaturalist-2018-format tree under ``root``; returns the two JSON paths."""
    data: Dict[str, Dict[str, list]] = {"train": {"images": [], "annotations": []},
                                        "val": {"images": [], "annotations": []}}
    categories = {}
    for split, ci, cls, k, scene in _one_object_images(sizes, seed, (91, 92)):
        categories[ci] = {"id": ci, "name": cls.name, "supercategory": "Miniatura"}
        file_name = f"train_val2018/Miniatura/{ci}/{split}_{k:04d}.jpg"
        write_image(os.path.join(root, file_name), scene)
        image_id = len(data["train"]["images"]) + len(data["val"]["images"]) + 1
        data[split]["images"].append({"id": image_id, "file_name": file_name, "width": scene.width,
                                      "height": scene.height, "license": 0})
        data[split]["annotations"].append({"id": image_id, "image_id": image_id, "category_id": ci})
    paths = {}
    for split, d in data.items():
        paths[split] = os.path.join(root, f"{split}2018.json")
        atomic_write_json(paths[split], {"info": {"description": "alpseg miniature iNat2018"}, "licenses": [],
                                  "categories": [categories[i] for i in sorted(categories)], **d})
    return paths
