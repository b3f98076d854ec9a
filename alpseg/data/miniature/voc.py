"""A miniature PASCAL VOC tree (VOC2007 trainval/test, VOC2012 trainval) for the transfer suite.

Same layout and file formats as the real release, so detectron2's VOC loader and the VOC07 SVM task
read it exactly as they read VOC: ``JPEGImages/*.jpg``, ``Annotations/*.xml`` (1-based inclusive
boxes, ``difficult`` flags), ``ImageSets/Main/{train,val,trainval,test}.txt`` and the per-class
``<class>_<split>.txt`` files with labels 1 (present), -1 (absent) and 0 (only difficult instances).

Each of the 20 VOC classes is a distinct (shape, colour) pair drawn by the miniature world's
renderer. Every image has a "primary" object whose class cycles through the 20 classes, so every
class has non-difficult positives in every split; other objects are random and some are marked
difficult.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import Dict, List, Sequence, Tuple

import numpy as np
from detectron2.data.datasets.pascal_voc import CLASS_NAMES as VOC_CLASSES

from alpseg.transfer.voc07_svm import labels_from_annotation_trees
from alpseg.utils.io import atomic_write

from .world import MiniClass, MiniObject, Scene, sample_scene
from .writers import write_image

__all__ = ["VOC_MINI_CLASSES", "write_miniature_voc"]

_SHAPES = ("disk", "ellipse", "wide_ellipse", "half_disk", "square", "tall_rect", "triangle", "diamond",
           "star", "cross")
_COLORS = ((200, 40, 40), (40, 90, 220))

#: 10 shapes x 2 colours: one appearance per VOC class.
VOC_MINI_CLASSES: List[MiniClass] = [
    MiniClass(name, _SHAPES[i % 10], _COLORS[i // 10], None, "", name)
    for i, name in enumerate(VOC_CLASSES)
]

_SPLIT_SEEDS = {("2007", "trainval"): 71, ("2007", "test"): 72, ("2012", "trainval"): 73}


def _scene(rng: np.random.Generator, primary: MiniClass, size: int, seed: int) -> Tuple[Scene, List[bool]]:
    """A scene whose first object is of class ``primary``; returns per-object difficult flags."""
    first = sample_scene(rng, [primary], size, size, num_objects=(1, 1), size_range=(30.0, 44.0), seed=seed)
    others = sample_scene(rng, VOC_MINI_CLASSES, size, size, num_objects=(0, 2), size_range=(14.0, 30.0),
                          seed=seed)
    objects: List[MiniObject] = list(first.objects)
    for obj in others.objects:
        a = objects[0].box
        b = obj.box
        if b[0] < a[2] + 3 and a[0] < b[2] + 3 and b[1] < a[3] + 3 and a[1] < b[3] + 3:
            continue  # keep objects apart, as the world's sampler does
        objects.append(obj)
    difficult = [False] + [bool(rng.random() < 0.3) for _ in objects[1:]]
    return Scene(size, size, first.background, objects, seed), difficult


def _annotation_xml(year: str, file_name: str, scene: Scene, difficult: Sequence[bool]) -> ET.ElementTree:
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = f"VOC{year}"
    ET.SubElement(root, "filename").text = file_name
    source = ET.SubElement(root, "source")
    ET.SubElement(source, "database").text = "alpseg miniature VOC"
    size = ET.SubElement(root, "size")
    for tag, v in (("width", scene.width), ("height", scene.height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(v)
    ET.SubElement(root, "segmented").text = "0"
    for obj, diff in zip(scene.objects, difficult):
        o = ET.SubElement(root, "object")
        ET.SubElement(o, "name").text = obj.cls.name
        ET.SubElement(o, "pose").text = "Unspecified"
        ET.SubElement(o, "truncated").text = "0"
        ET.SubElement(o, "difficult").text = "1" if diff else "0"
        x0, y0, x1, y1 = obj.box
        box = ET.SubElement(o, "bndbox")
        # VOC boxes are 1-based, inclusive pixel indices.
        coords = (("xmin", np.floor(x0) + 1), ("ymin", np.floor(y0) + 1),
                  ("xmax", min(np.ceil(x1), scene.width)), ("ymax", min(np.ceil(y1), scene.height)))
        for tag, v in coords:
            ET.SubElement(box, tag).text = str(int(v))
    return ET.ElementTree(root)


def write_miniature_voc(
    root: str,
    seed: int = 0,
    years: Sequence[str] = ("2007", "2012"),
    images_per_split: int = 60,
    image_size: int = 96,
) -> Dict[str, Dict[str, List[str]]]:
    """Write ``root/VOC<year>/`` trees; VOC2007 gets trainval and test, VOC2012 trainval only.

    Every class has ``images_per_split // 20`` (or one more) non-difficult positives per split; the
    VOC07 SVM's 3-fold cross-validation needs three, i.e. ``images_per_split >= 60`` (the default). Returns ``{year: {split: [image ids]}}``.
    """
    if images_per_split < len(VOC_CLASSES):
        raise ValueError(f"images_per_split must be >= {len(VOC_CLASSES)} so every class has positives")
    written: Dict[str, Dict[str, List[str]]] = {}
    for year in years:
        year = str(year)
        if year not in ("2007", "2012"):
            raise ValueError(f"unsupported VOC year {year!r}")
        base = os.path.join(root, f"VOC{year}")
        main = os.path.join(base, "ImageSets", "Main")
        os.makedirs(os.path.join(base, "Annotations"), exist_ok=True)
        os.makedirs(main, exist_ok=True)
        splits = ("trainval", "test") if year == "2007" else ("trainval",)
        written[year] = {}
        for split in splits:
            split_seed = _SPLIT_SEEDS[(year, split)]
            rng = np.random.default_rng([seed, split_seed])
            offset = 0 if split == "trainval" else 500000
            ids, trees = [], {}
            for i in range(images_per_split):
                image_id = f"{year}_{offset + i + 1:06d}" if year == "2012" else f"{offset + i + 1:06d}"
                scene, difficult = _scene(rng, VOC_MINI_CLASSES[i % len(VOC_MINI_CLASSES)], image_size,
                                          seed=seed * 1000003 + split_seed * 10007 + i)
                write_image(os.path.join(base, "JPEGImages", f"{image_id}.jpg"), scene)
                tree = _annotation_xml(year, f"{image_id}.jpg", scene, difficult)
                tree.write(os.path.join(base, "Annotations", f"{image_id}.xml"), encoding="utf-8")
                ids.append(image_id)
                trees[image_id] = tree
            parts = {split: ids}
            if split == "trainval":  # the devkit's train / val halves of trainval
                parts["train"], parts["val"] = ids[0::2], ids[1::2]
            table = labels_from_annotation_trees([trees[i].getroot() for i in ids])
            labels = {c: dict(zip(ids, table[:, k].tolist())) for k, c in enumerate(VOC_CLASSES)}
            for part, part_ids in parts.items():
                atomic_write(os.path.join(main, f"{part}.txt"), "".join(f"{i}\n" for i in part_ids))
                for c in VOC_CLASSES:
                    atomic_write(os.path.join(main, f"{c}_{part}.txt"),
                                 "".join(f"{i} {labels[c][i]:2d}\n" for i in part_ids))
            written[year][split] = ids
    return written
