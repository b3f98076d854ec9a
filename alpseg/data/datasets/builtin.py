"""Registration of every alpseg dataset name under one root (``$DETECTRON2_DATASETS``).

Nothing is read here: loaders run on ``DatasetCatalog.get`` and class lists are resolved on first
access to the metadata (:mod:`.lazy_metadata`). The paths below are the tree of docs/architecture.md;
``datasets/README.md`` says where each file comes from.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional

from detectron2.data import DatasetCatalog

from alpseg.evaluation.oid.io import read_class_descriptions

from .class_lists import (NUM_OID_BASE, NUM_OID_CLASSES, OID_SEGMENTABLE_CLASSES, OID_SEGMENTABLE_HIERARCHY,
                          coco_thing_classes, oid_base_mids, shipped_oid_classes, split_base_novel, voc_classes,
                          zsd_base_classes, zsd_novel_classes)
from .coco_splits import coco_split_metadata, load_coco_split
from .lazy_metadata import register_lazy_metadata
from .oid import load_oid_boxes, load_oid_challenge_segmentation, oid_class_phrases

__all__ = ["register_all_alpseg", "ALPSEG_DATASETS", "ALPSEG_MERGED_DATASETS", "check_oid_class_file"]

_COCO_IMAGES = {"train": "coco/train2017", "val": "coco/val2017"}
_COCO_JSON = {"train": "coco/annotations/instances_train2017.json",
              "val": "coco/annotations/instances_val2017.json"}
_OID_SEG = "openimages/segmentation"
_OID_SEG_CLASSES = f"{_OID_SEG}/classes-description-segmentable.csv"


def _coco_names() -> List[str]:
    return [n for _, n in coco_thing_classes()]


def _vocmasks(split: str) -> Dict:
    """VOC-masks: train keeps the 20 VOC classes only; val evaluates all 80 (20 base, 60 novel)."""
    base, novel = split_base_novel(_coco_names(), voc_classes())
    return coco_split_metadata(base if split == "train" else _coco_names(), base, novel)


def _zsd(split: str) -> Dict:
    """ZSD: train keeps the 48 base classes; val evaluates the 65 base + novel (15 ignored)."""
    base, novel = split_base_novel(_coco_names(), zsd_base_classes())
    novel = [c for c in novel if c in set(zsd_novel_classes())]
    classes = base if split == "train" else [c for c in _coco_names() if c in set(base) | set(novel)]
    return coco_split_metadata(classes, base, novel)


def _oracle(classes_fn):
    """The box-supervised oracle's training split (Table 4): every class the evaluation set has, with
    masks of the base classes and only boxes of the novel ones."""
    def metadata(split: str) -> Dict:
        meta = classes_fn("val")
        return coco_split_metadata(meta["base_classes"] + meta["novel_classes"], meta["base_classes"],
                                   meta["novel_classes"])
    return metadata


def _register_coco_split(root: str, name: str, split: str, classes_fn, box_only_novel: bool = False) -> None:
    image_root = os.path.join(root, _COCO_IMAGES[split])
    json_file = os.path.join(root, _COCO_JSON[split])
    meta = register_lazy_metadata(
        name, ["thing_classes", "base_classes", "novel_classes", "thing_dataset_id_to_contiguous_id"],
        lambda: classes_fn(split), json_file=json_file, image_root=image_root,
        evaluator_type="coco_base_novel")
    DatasetCatalog.register(name, lambda: load_coco_split(
        json_file, image_root, meta.thing_classes, meta.novel_classes if box_only_novel else ()))


def check_oid_class_file(dataset_csv: Optional[str]) -> str:
    """The class list an OID set uses: the shipped 300-class file, after checking ``dataset_csv``.

    A dataset folder that has its own class-descriptions file must list the same MIDs with the same
    display names (any order); a disagreement is an error naming the differing MIDs. Returns the path
    of the shipped file, whose order fixes ``thing_classes`` and ``category_id``.
    """
    if dataset_csv and os.path.isfile(dataset_csv):
        theirs, ours = read_class_descriptions(dataset_csv), shipped_oid_classes()
        only_theirs = sorted(set(theirs) - set(ours))
        only_ours = sorted(set(ours) - set(theirs))
        renamed = sorted(m for m in set(ours) & set(theirs) if theirs[m] != ours[m])
        if only_theirs or only_ours or renamed:
            raise ValueError(
                f"{dataset_csv} disagrees with the shipped Open Images class list {OID_SEGMENTABLE_CLASSES}: "
                f"MIDs only in the dataset's file {only_theirs[:10]}, only in the shipped list {only_ours[:10]}, "
                f"with other display names {[(m, theirs[m], ours[m]) for m in renamed[:10]]}"
                + (" (lists cut at 10)" if max(len(only_theirs), len(only_ours), len(renamed)) > 10 else "")
                + "; replace the dataset's file with the shipped one or remove it")
    return OID_SEGMENTABLE_CLASSES


def _oid_class_metadata(dataset_csv: Optional[str] = None) -> Dict:
    """Class lists of an OID set: the shipped 300 classes; base = the 60 MIDs of the COCO <-> OID map.

    Any other count (a class list or map that was edited) is an error, never a silent re-split.
    """
    mids, names = oid_class_phrases(check_oid_class_file(dataset_csv))
    base_mids = set(oid_base_mids())
    absent = sorted(base_mids - set(mids))
    if absent:
        raise ValueError(f"coco_oid_base_map.tsv: base MIDs not in {OID_SEGMENTABLE_CLASSES}: {absent}")
    base = [n for m, n in zip(mids, names) if m in base_mids]
    novel = [n for m, n in zip(mids, names) if m not in base_mids]
    if (len(mids), len(base), len(novel)) != (NUM_OID_CLASSES, NUM_OID_BASE, NUM_OID_CLASSES - NUM_OID_BASE):
        raise ValueError(f"Open Images split has {len(mids)} classes, {len(base)} base and {len(novel)} novel; "
                         f"expected {NUM_OID_CLASSES} = {NUM_OID_BASE} base + {NUM_OID_CLASSES - NUM_OID_BASE} "
                         f"novel (check {OID_SEGMENTABLE_CLASSES} and coco_oid_base_map.tsv)")
    return {"thing_classes": names, "thing_mids": mids, "base_classes": base, "novel_classes": novel}


def _register_oid_seg(root: str, name: str, split: str) -> None:
    seg = os.path.join(root, _OID_SEG)
    dataset_csv = os.path.join(root, _OID_SEG_CLASSES)
    gt = {
        "boxes": os.path.join(seg, f"{split}-segmentation-bbox.csv"),
        "masks": os.path.join(seg, f"{split}-segmentation-masks.csv"),
        "labels": os.path.join(seg, f"{split}-segmentation-labels.csv"),
        # the hierarchy belongs to the class list: both are the shipped challenge-2019 files
        "hierarchy": OID_SEGMENTABLE_HIERARCHY,
        "class_descriptions": OID_SEGMENTABLE_CLASSES,
    }
    image_root = os.path.join(root, "openimages", split)
    register_lazy_metadata(name, ["thing_classes", "thing_mids", "base_classes", "novel_classes"],
                           lambda: _oid_class_metadata(dataset_csv), oid_gt=gt,
                           image_root=image_root, evaluator_type="oid_challenge")
    DatasetCatalog.register(name, lambda: load_oid_challenge_segmentation(
        gt["masks"], gt["boxes"], check_oid_class_file(dataset_csv), image_root))


def _register_oid_boxes(root: str, name: str) -> None:
    class_csv = os.path.join(root, _OID_SEG_CLASSES)
    bbox_csv = os.path.join(root, "openimages/annotations/oidv6-train-annotations-bbox.csv")
    info = os.path.join(root, "openimages/annotations/locnar_oid_train_image_info.json")
    image_root = os.path.join(root, "openimages/train")
    register_lazy_metadata(name, ["thing_classes", "thing_mids", "base_classes", "novel_classes"],
                           lambda: _oid_class_metadata(class_csv), image_root=image_root,
                           bbox_csv=bbox_csv, image_info_json=info)
    DatasetCatalog.register(name, lambda: load_oid_boxes(bbox_csv, info, check_oid_class_file(class_csv), image_root))


def _load_alps(json_file: str, image_root: str) -> List[Dict]:
    from alpseg.data.alp_dataset import load_alp_json  # lazy: curation output reader

    return load_alp_json(json_file, image_root)


def _register_alps(root: str, name: str, json_rel: str, image_rel: str) -> None:
    json_file, image_root = os.path.join(root, json_rel), os.path.join(root, image_rel)
    register_lazy_metadata(name, [], dict, json_file=json_file, image_root=image_root)
    DatasetCatalog.register(name, lambda: _load_alps(json_file, image_root))


def _register_merged_alps(name: str, masks: str, alps: str, split_metadata) -> None:
    """``masks`` and the ALPs of the same images in one record per image (merge_alps_per_image)."""
    def load() -> List[Dict]:
        from alpseg.data.alp_dataset import merge_alps_per_image

        return merge_alps_per_image(DatasetCatalog.get(masks), DatasetCatalog.get(alps), dataset_name=name)

    register_lazy_metadata(
        name, ["thing_classes", "base_classes", "novel_classes", "thing_dataset_id_to_contiguous_id"],
        lambda: split_metadata("train"), evaluator_type="coco_base_novel")
    DatasetCatalog.register(name, load)


#: every name this module registers
ALPSEG_DATASETS = [
    "coco_2017_train_vocmasks", "coco_2017_val_vocmasks", "coco_2017_train_zsd", "coco_2017_val_zsd",
    "coco_2017_train_vocmasks_oracle", "coco_2017_train_zsd_oracle",
    "locnar_coco_train_alps", "locnar_oid_train_alps", "oid_v6_seg_val", "oid_v6_seg_test",
    "oid_v6_locnar_train_boxes",
]
#: also registered: COCO masks and LocNar-COCO ALPs of the same images merged per image (the
#: alternative to alternating batches; ``merge_alps_per_image``), each annotation keeping its ``is_alp``
ALPSEG_MERGED_DATASETS = ["coco_2017_train_vocmasks_merged_alps", "coco_2017_train_zsd_merged_alps"]


def register_all_alpseg(root: str) -> None:
    """Register every name of :data:`ALPSEG_DATASETS` and :data:`ALPSEG_MERGED_DATASETS` under ``root``."""
    _register_coco_split(root, "coco_2017_train_vocmasks", "train", _vocmasks)
    _register_coco_split(root, "coco_2017_val_vocmasks", "val", _vocmasks)
    _register_coco_split(root, "coco_2017_train_zsd", "train", _zsd)
    _register_coco_split(root, "coco_2017_val_zsd", "val", _zsd)
    _register_coco_split(root, "coco_2017_train_vocmasks_oracle", "train", _oracle(_vocmasks), box_only_novel=True)
    _register_coco_split(root, "coco_2017_train_zsd_oracle", "train", _oracle(_zsd), box_only_novel=True)
    _register_alps(root, "locnar_coco_train_alps", "alps/locnar_coco_train_alps.json", "coco/train2017")
    _register_alps(root, "locnar_oid_train_alps", "alps/locnar_oid_train_alps.json", "openimages/train")
    _register_merged_alps("coco_2017_train_vocmasks_merged_alps", "coco_2017_train_vocmasks", "locnar_coco_train_alps",
                          _vocmasks)
    _register_merged_alps("coco_2017_train_zsd_merged_alps", "coco_2017_train_zsd", "locnar_coco_train_alps", _zsd)
    _register_oid_seg(root, "oid_v6_seg_val", "validation")
    _register_oid_seg(root, "oid_v6_seg_test", "test")
    _register_oid_boxes(root, "oid_v6_locnar_train_boxes")
