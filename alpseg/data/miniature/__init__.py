"""The miniature world: a small, generated dataset tree in the real file formats.

``write_miniature_world(root)`` writes, under ``root`` (used as ``DETECTRON2_DATASETS``), the tree of
docs/architecture.md: COCO JSON with masks of base classes, Localized Narratives JSONL for the COCO and
Open Images training images (word timings, mouse traces over the described objects), OID v6 boxes for
the box oracle, Open-Images-challenge segmentation CSVs for validation/test with masks of every class,
and, for the transfer suite, PASCAL VOC, ImageNet-style, iNat-style and LVIS trees. It is deterministic in ``seed``.
A ``manifest.json`` at the root records what was generated and, for every narrative, which object each
phrase describes (used to measure how well curated ALP boxes cover their objects).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from typing import Any, Dict, List

import numpy as np

from .narratives import make_narrative
from .world import BASE_CLASSES, CLASSES, NOVEL_CLASSES, Scene, sample_scene
from alpseg.data.datasets.class_lists import OID_SEGMENTABLE_CLASSES, OID_SEGMENTABLE_HIERARCHY, shipped_oid_classes
from alpseg.utils.io import atomic_open, atomic_write, atomic_write_json as write_json

from .writers import challenge_rows, coco_json, oid_box_rows, write_csv, write_image

__all__ = ["MiniatureSizes", "write_miniature_world", "generator_fingerprint", "CLASSES", "BASE_CLASSES", "NOVEL_CLASSES"]

MANIFEST = "manifest.json"
FORMAT_VERSION = 5  # bump whenever generated content changes, so cached trees are rewritten


def generator_fingerprint() -> str:
    """A hash of this package's source: any edit of the generator invalidates cached trees.

    Recorded in the manifest's settings beside the seed, the sizes and ``FORMAT_VERSION``, so a tree
    cached by the tests or the demo (``$ALPSEG_TEST_DATASETS``, ``output/demo``) is rewritten after a
    change of the generated content even when nobody remembered to bump the version.
    """
    digest = hashlib.sha256()
    here = os.path.dirname(os.path.abspath(__file__))
    for name in sorted(os.listdir(here)):
        if name.endswith(".py"):
            with open(os.path.join(here, name), "rb") as f:
                digest.update(name.encode() + b"\0" + f.read())
    return digest.hexdigest()[:16]


@dataclasses.dataclass
class MiniatureSizes:
    """How many images of each part to generate, and their size."""

    coco_train: int = 48
    coco_val: int = 12
    oid_train: int = 96
    oid_val: int = 32
    oid_test: int = 12
    image_size: int = 128
    voc: bool = True  # also write VOC2007 and ImageFolder trees for the transfer suite


def _oid_image_id(rng: np.random.Generator) -> str:
    return "".join("0123456789abcdef"[int(v)] for v in rng.integers(0, 16, size=16))


def write_miniature_world(root: str, seed: int = 0, sizes: MiniatureSizes | None = None,
                          overwrite: bool = False) -> Dict[str, Any]:
    """Write the miniature tree under ``root`` and return its manifest.

    A tree already written with the same seed, sizes and generator (:func:`generator_fingerprint`) is reused (returns its manifest) unless
    ``overwrite``; a miniature tree of other settings at ``root`` is deleted first.
    """
    sizes = sizes or MiniatureSizes()
    settings = {"seed": seed, "sizes": dataclasses.asdict(sizes), "version": FORMAT_VERSION,
                "generator": generator_fingerprint()}
    manifest_path = os.path.join(root, MANIFEST)
    if os.path.isfile(manifest_path) and not overwrite:
        with open(manifest_path, encoding="utf-8") as f:
            manifest = json.load(f)
        if manifest.get("settings") == settings:
            return manifest
        # A tree of other settings: remove it whole, with what was derived from it (e.g. curated ALPs).
        shutil.rmtree(root)
    rng = np.random.default_rng(seed)
    s = sizes.image_size
    manifest: Dict[str, Any] = {"settings": settings, "narratives": {}}

    def scenes(n: int, classes, split_seed: int) -> List[Scene]:
        # image i's first object is of class i mod |classes|: a split of >= |classes| images has them all
        return [sample_scene(rng, classes, s, s, seed=split_seed * 100003 + i, first_class=classes[i % len(classes)])
                for i in range(n)]

    # --- COCO: base classes only, with masks; LocNar-COCO narratives on the train images.
    coco_dir = os.path.join(root, "coco")
    locnar_dir = os.path.join(root, "localized_narratives")
    for split, n, split_seed in (("train2017", sizes.coco_train, 1), ("val2017", sizes.coco_val, 2)):
        sc = scenes(n, BASE_CLASSES, split_seed)
        ids = [split_seed * 100000 + i + 1 for i in range(n)]
        names = [f"{i:012d}.jpg" for i in ids]
        for scene, name in zip(sc, names):
            write_image(os.path.join(coco_dir, split, name), scene)
        write_json(os.path.join(coco_dir, "annotations", f"instances_{split}.json"), coco_json(sc, ids, names))
        if split == "train2017":
            records = []
            for scene, image_id in zip(sc, ids):
                rec, truth = make_narrative(scene, rng, "mscoco_train2017", str(image_id), int(rng.integers(1, 40)))
                records.append(rec)
                manifest["narratives"][f"coco/{image_id}"] = [
                    dict(t, box=scene.objects[t["object_index"]].box, name=scene.objects[t["object_index"]].cls.name)
                    for t in truth]
            _write_jsonl(os.path.join(locnar_dir, "coco_train_localized_narratives.jsonl"), records)

    # --- Open Images: LocNar-OID training images (base + novel objects, narratives, OID boxes).
    oid_dir = os.path.join(root, "openimages")
    sc = scenes(sizes.oid_train, CLASSES, 3)
    ids = [_oid_image_id(rng) for _ in sc]
    records, box_rows = [], []
    for scene, image_id in zip(sc, ids):
        write_image(os.path.join(oid_dir, "train", f"{image_id}.jpg"), scene)
        rec, truth = make_narrative(scene, rng, "open_images_train_v6", image_id, int(rng.integers(1, 40)))
        records.append(rec)
        box_rows += oid_box_rows(image_id, scene)
        manifest["narratives"][f"oid/{image_id}"] = [
            dict(t, box=scene.objects[t["object_index"]].box, name=scene.objects[t["object_index"]].cls.name)
            for t in truth]
    _write_jsonl(os.path.join(locnar_dir, "open_images_train_v6_localized_narratives.jsonl"), records)
    write_json(os.path.join(oid_dir, "annotations", "locnar_oid_train_image_info.json"), {
        "images": [{"id": i, "file_name": f"{i}.jpg", "width": s, "height": s} for i in ids]})
    write_csv(os.path.join(oid_dir, "annotations", "oidv6-train-annotations-bbox.csv"),
              ["ImageID", "Source", "LabelName", "Confidence", "XMin", "XMax", "YMin", "YMax", "IsOccluded",
               "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside"], box_rows)
    # The real class list and hierarchy (the miniature classes are 10 of its 300), as a user's tree has them.
    shipped = shipped_oid_classes()
    write_csv(os.path.join(oid_dir, "annotations", "oidv6-class-descriptions.csv"), ["LabelName", "DisplayName"],
              shipped.items())

    # --- Open Images challenge-style segmentation evaluation sets (every class has masks).
    seg_dir = os.path.join(oid_dir, "segmentation")
    for src, dst in ((OID_SEGMENTABLE_CLASSES, "classes-description-segmentable.csv"),
                     (OID_SEGMENTABLE_HIERARCHY, "label300-segmentable-hierarchy.json")):
        with open(src, "rb") as f:
            atomic_write(os.path.join(seg_dir, dst), f.read())
    for split, n, split_seed in (("validation", sizes.oid_val, 4), ("test", sizes.oid_test, 5)):
        sc = scenes(n, CLASSES, split_seed)
        ids = [_oid_image_id(rng) for _ in sc]
        b_rows, m_rows, l_rows = [], [], []
        for scene, image_id in zip(sc, ids):
            write_image(os.path.join(oid_dir, split, f"{image_id}.jpg"), scene)
            b, m, lab = challenge_rows(image_id, scene, rng)
            b_rows += b
            m_rows += m
            l_rows += lab
        write_csv(os.path.join(seg_dir, f"{split}-segmentation-bbox.csv"),
                  ["ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax", "IsGroupOf"], b_rows)
        write_csv(os.path.join(seg_dir, f"{split}-segmentation-masks.csv"),
                  ["ImageID", "LabelName", "ImageWidth", "ImageHeight", "XMin", "YMin", "XMax", "YMax",
                   "IsGroupOf", "Mask"], m_rows)
        write_csv(os.path.join(seg_dir, f"{split}-segmentation-labels.csv"),
                  ["ImageID", "LabelName", "Confidence"], l_rows)

    # --- Transfer-suite trees (written by the transfer package's own miniature writers).
    if sizes.voc:
        from .imagefolder import write_miniature_imagefolder, write_miniature_inat
        from .lvis import write_miniature_lvis
        from .voc import write_miniature_voc

        write_miniature_voc(root, seed=seed)
        write_miniature_imagefolder(os.path.join(root, "imagenet"), seed=seed)
        write_miniature_inat(os.path.join(root, "inat2018"), seed=seed)
        write_miniature_lvis(root)  # the miniature COCO rewritten in LVIS v1 format

    write_json(manifest_path, manifest)
    return manifest


def _write_jsonl(path: str, records: List[Dict[str, Any]]) -> None:
    with atomic_open(path) as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
