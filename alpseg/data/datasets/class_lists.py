"""Class lists of the evaluation splits, read from the package's resource files.

The splits are data, not code: ``alpseg/data/resources`` holds the 20 VOC classes (as COCO names),
the 48 / 17 classes of the COCO zero-shot split (Bansal et al. 2018; the split OVR-CNN and Detic use)
and ``coco_oid_base_map.tsv``, our COCO <-> Open Images correspondence of the 60 base classes of the
COCO -> OID setup, keyed by the MIDs of the shipped challenge-2019 segmentable list (``openimages/``). Every name handed out here is a normalized phrase
(:func:`alpseg.text.prompts.normalize_phrase`), the key of the phrase bank.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from typing import Dict, List, Sequence, Tuple

from alpseg.text.prompts import normalize_phrase

__all__ = [
    "RESOURCES_DIR",
    "read_name_list",
    "coco_thing_classes",
    "voc_classes",
    "zsd_base_classes",
    "zsd_novel_classes",
    "OID_SEGMENTABLE_CLASSES",
    "OID_SEGMENTABLE_HIERARCHY",
    "BasePair",
    "coco_oid_base_rows",
    "coco_oid_base_map",
    "oid_base_names",
    "oid_base_mids",
    "shipped_oid_classes",
    "split_base_novel",
]

RESOURCES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "resources")
#: the Open Images challenge-2019 instance-segmentation class list and hierarchy, shipped verbatim
#: (CC BY 4.0, Google LLC; see datasets/README.md)
OID_SEGMENTABLE_CLASSES = os.path.join(RESOURCES_DIR, "openimages",
                                       "oid-challenge-2019-classes-description-segmentable300.csv")
OID_SEGMENTABLE_HIERARCHY = os.path.join(RESOURCES_DIR, "openimages",
                                         "oid-challenge-2019-label300-segmentable-hierarchy.json")


def read_name_list(path: str) -> List[str]:
    """Normalized names of a one-name-per-line file (``#`` comments and blank lines skipped).

    Duplicates are an error: a split file that names a class twice is a mistake, not a choice.
    """
    names: List[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                names.append(normalize_phrase(line))
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"{path}: duplicated names {dup}")
    return names


def _resource(name: str) -> str:
    return os.path.join(RESOURCES_DIR, name)


@functools.lru_cache(maxsize=None)
def coco_thing_classes() -> Tuple[Tuple[int, str], ...]:
    """(COCO category id, normalized name) of the 80 COCO thing classes, in id order."""
    from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES

    return tuple((c["id"], normalize_phrase(c["name"])) for c in COCO_CATEGORIES if c["isthing"])


def _checked_coco_subset(path: str, expected: int) -> List[str]:
    names = read_name_list(path)
    known = {n for _, n in coco_thing_classes()}
    unknown = [n for n in names if n not in known]
    if unknown or len(names) != expected:
        raise ValueError(f"{path}: expected {expected} COCO class names, got {len(names)} (unknown: {unknown})")
    return names


@functools.lru_cache(maxsize=None)
def voc_classes() -> Tuple[str, ...]:
    """The 20 PASCAL VOC classes as COCO names (base classes of COCO VOC-masks)."""
    return tuple(_checked_coco_subset(_resource("voc_classes.txt"), 20))


@functools.lru_cache(maxsize=None)
def zsd_base_classes() -> Tuple[str, ...]:
    """The 48 base classes of the COCO zero-shot split."""
    return tuple(_checked_coco_subset(_resource("coco_zsd_base.txt"), 48))


@functools.lru_cache(maxsize=None)
def zsd_novel_classes() -> Tuple[str, ...]:
    """The 17 novel classes of the COCO zero-shot split."""
    return tuple(_checked_coco_subset(_resource("coco_zsd_novel.txt"), 17))


@dataclasses.dataclass(frozen=True)
class BasePair:
    """One row of ``coco_oid_base_map.tsv``: an Open Images base class and the COCO class covering it."""

    oid_mid: str
    oid_name: str  # display name, as in the class list
    coco_name: str  # normalized COCO name
    note: str = ""


NUM_OID_CLASSES, NUM_OID_BASE = 300, 60


@functools.lru_cache(maxsize=None)
def coco_oid_base_rows(path: str = "") -> Tuple[BasePair, ...]:
    """The rows of ``coco_oid_base_map.tsv`` (header ``oid_mid, oid_name, coco_name[, note]``).

    Each MID appears once, each COCO name once, and every COCO name is a COCO thing class.
    """
    path = path or _resource("coco_oid_base_map.tsv")
    with open(path, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip() and not line.startswith("#")]
    if not rows or rows[0][:3] != ["oid_mid", "oid_name", "coco_name"]:
        raise ValueError(f"{path}: the first row must be the header 'oid_mid<TAB>oid_name<TAB>coco_name<TAB>note'")
    known = {n for _, n in coco_thing_classes()}
    pairs: List[BasePair] = []
    for i, row in enumerate(rows[1:], start=2):
        if len(row) not in (3, 4):
            raise ValueError(f"{path}: row {i} has {len(row)} columns, expected 3 or 4: {row}")
        coco = normalize_phrase(row[2])
        if coco not in known:
            raise ValueError(f"{path}: row {i}: {row[2]!r} is not a COCO class")
        pairs.append(BasePair(row[0].strip(), row[1].strip(), coco, row[3].strip() if len(row) == 4 else ""))
    for what, values in (("MIDs", [p.oid_mid for p in pairs]), ("COCO classes", [p.coco_name for p in pairs])):
        dup = sorted({v for v in values if values.count(v) > 1})
        if dup:
            raise ValueError(f"{path}: {what} listed twice: {dup}")
    return tuple(pairs)


def coco_oid_base_map(path: str = "") -> Tuple[Tuple[str, str], ...]:
    """(COCO name, Open Images name) pairs, both normalized, of the base classes."""
    return tuple((p.coco_name, normalize_phrase(p.oid_name)) for p in coco_oid_base_rows(path))


def oid_base_names() -> Tuple[str, ...]:
    """Normalized Open Images names of the base classes (those COCO masks cover)."""
    return tuple(o for _, o in coco_oid_base_map())


def oid_base_mids() -> Tuple[str, ...]:
    """MIDs of the base classes of the COCO -> OID split."""
    return tuple(p.oid_mid for p in coco_oid_base_rows())


def shipped_oid_classes() -> "Dict[str, str]":
    """MID -> display name of the shipped challenge-2019 segmentable list (300 classes, file order)."""
    from alpseg.evaluation.oid.io import read_class_descriptions

    return read_class_descriptions(OID_SEGMENTABLE_CLASSES)


def split_base_novel(classes: Sequence[str], base: Sequence[str]) -> Tuple[List[str], List[str]]:
    """(base, novel) of ``classes``, both in the order of ``classes``; base = members of ``base``."""
    base_set = set(base)
    return [c for c in classes if c in base_set], [c for c in classes if c not in base_set]


def index_of(classes: Sequence[str]) -> Dict[str, int]:
    """name -> position, refusing duplicated names (they would make class indices ambiguous)."""
    out: Dict[str, int] = {}
    for i, c in enumerate(classes):
        if c in out:
            raise ValueError(f"class name {c!r} appears twice in the class list")
        out[c] = i
    return out
