"""detectron2's builtin COCO / LVIS / VOC names, rooted where the user keeps the data, and subsets.

detectron2 registers its builtin datasets once, at import, under ``$DETECTRON2_DATASETS``. The
transfer suite takes a ``--datasets-root`` instead (and its tests point it at a miniature tree),
so these helpers re-register a builtin name under any root, list the files a name needs (so a
missing dataset is reported with its expected path before anything starts), and register LocTex's
fixed, seeded fractions of a training set.
"""
from __future__ import annotations

import os
import re
from typing import Dict, List, Sequence

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
# Private names, on purpose: detectron2 has no public table of its builtin splits' relative paths or
# of their metadata (it registers them once under the import-time root); these are that table.
from detectron2.data.datasets.builtin import _PREDEFINED_SPLITS_COCO, _PREDEFINED_SPLITS_LVIS
from detectron2.data.datasets.builtin_meta import _get_builtin_metadata
from detectron2.data.datasets.coco import register_coco_instances
from detectron2.data.datasets.lvis import get_lvis_instances_meta, register_lvis_instances
from detectron2.data.datasets.pascal_voc import register_pascal_voc

from alpseg.utils.io import atomic_write_json

__all__ = ["required_paths", "register_under_root", "register_subset", "subset_name", "subset_image_ids"]

_VOC = re.compile(r"^voc_(2007|2012)_(trainval|train|val|test)$")


def _lvis_version(name: str) -> str:
    for version, splits in _PREDEFINED_SPLITS_LVIS.items():
        if name in splits:
            return version
    raise KeyError(name)


def required_paths(name: str, root: str) -> List[str]:
    """Files and folders that the builtin dataset ``name`` reads under ``root``."""
    coco = _PREDEFINED_SPLITS_COCO["coco"]
    if name in coco:
        image_root, json_file = coco[name]
        return [os.path.join(root, json_file), os.path.join(root, image_root)]
    try:
        image_root, json_file = _PREDEFINED_SPLITS_LVIS[_lvis_version(name)][name]
        # LVIS images are COCO's: file names come from each image's coco_url (train2017 / val2017)
        return [os.path.join(root, json_file), os.path.join(root, image_root)]
    except KeyError:
        pass
    m = _VOC.match(name)
    if m:
        base = os.path.join(root, f"VOC{m.group(1)}")
        return [os.path.join(base, "ImageSets", "Main", f"{m.group(2)}.txt"), os.path.join(base, "JPEGImages"),
                os.path.join(base, "Annotations")]
    raise KeyError(f"{name!r} is not a detectron2 builtin COCO, LVIS or VOC dataset name")


def register_under_root(name: str, root: str) -> None:
    """(Re-)register builtin ``name`` so that it reads its files under ``root``."""
    paths = required_paths(name, root)
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    if name in _PREDEFINED_SPLITS_COCO["coco"]:
        register_coco_instances(name, _get_builtin_metadata("coco"), paths[0], paths[1])
        return
    m = _VOC.match(name)
    if m:
        register_pascal_voc(name, os.path.dirname(paths[1]), m.group(2), int(m.group(1)))
        MetadataCatalog.get(name).evaluator_type = "pascal_voc"
        return
    register_lvis_instances(name, get_lvis_instances_meta(_lvis_version(name)), paths[0], paths[1])


def subset_name(name: str, percent: float, seed: int) -> str:
    return f"{name}_{percent:g}pct_seed{seed}"


def subset_image_ids(image_ids: Sequence, percent: float, seed: int) -> List:
    """A fixed fraction of ``image_ids``: a prefix of one seeded permutation of the sorted ids, so
    that smaller fractions are contained in larger ones and every run picks the same images."""
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent}")
    ordered = sorted(set(image_ids))
    perm = np.random.default_rng(seed).permutation(len(ordered))
    k = max(1, int(round(len(ordered) * percent / 100.0)))
    return sorted(ordered[i] for i in perm[:k])


def register_subset(name: str, percent: float, seed: int, record_file: str = "") -> str:
    """Register ``<name>_<p>pct_seed<s>``: the images of ``subset_image_ids`` with their annotations.

    The chosen ids are written to ``record_file`` (JSON) when given, so a run documents its subset.
    """
    new = subset_name(name, percent, seed)
    if new in DatasetCatalog.list():
        DatasetCatalog.remove(new)
        MetadataCatalog.remove(new)

    def load() -> List[Dict]:
        dicts = DatasetCatalog.get(name)
        keep = set(subset_image_ids([d["image_id"] for d in dicts], percent, seed))
        chosen = [d for d in dicts if d["image_id"] in keep]
        if record_file:
            atomic_write_json(record_file, {"dataset": name, "percent": percent, "seed": seed,
                                            "num_images": len(chosen), "of": len(dicts), "image_ids": sorted(keep)})
        return chosen

    DatasetCatalog.register(new, load)
    meta = MetadataCatalog.get(name).as_dict()
    meta.pop("name", None)
    MetadataCatalog.get(new).set(**meta)
    return new
