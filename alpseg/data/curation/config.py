"""The settings of ALP curation and the word lists they hold (``alpseg/data/resources/``)."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from typing import Any, Dict

__all__ = ["CurationConfig", "load_word_list", "RESOURCES", "STUFF_CLASSES_FILE", "PICTURE_WORDS_FILE",
           "PLURALIA_TANTUM_FILE", "load_vocabulary", "default_vocabulary"]

RESOURCES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources")
STUFF_CLASSES_FILE = os.path.join(RESOURCES, "stuff_classes.txt")
PICTURE_WORDS_FILE = os.path.join(RESOURCES, "picture_words.txt")
PLURALIA_TANTUM_FILE = os.path.join(RESOURCES, "pluralia_tantum.txt")
OID_CLASSES_FILE = os.path.join(RESOURCES, "openimages", "oid-challenge-2019-classes-description-segmentable300.csv")
COCO_CLASS_FILES = (os.path.join(RESOURCES, "coco_zsd_base.txt"), os.path.join(RESOURCES, "coco_zsd_novel.txt"))


def load_word_list(path: str) -> frozenset:
    """Entries of a resource word list: one per line, lowercased, ``#`` comments and blanks ignored."""
    out = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            entry = " ".join(line.split("#", 1)[0].lower().split())
            if entry:
                out.add(entry)
    return frozenset(out)


def load_vocabulary(path: str) -> frozenset:
    """Lowercased class names from a word list (``.txt``) or a class-description CSV (``MID,Name``)."""
    if not path.endswith(".csv"):
        return load_word_list(path)
    import csv

    with open(path, encoding="utf-8-sig", newline="") as f:
        return frozenset(" ".join(row[-1].lower().split()) for row in csv.reader(f) if row and row[-1].strip())


@functools.lru_cache(maxsize=1)
def default_vocabulary() -> frozenset:
    """The vocabulary hint shipped with the package: the 300 segmentable Open Images classes and COCO's."""
    out = set(load_vocabulary(OID_CLASSES_FILE))
    for path in COCO_CLASS_FILES:
        out |= load_word_list(path)
    return frozenset(out)


@dataclasses.dataclass(frozen=True)
class CurationConfig:
    """Every knob of the curation; defaults are the paper's where it gives one."""

    temporal_padding: float = 0.5  # tp in seconds (paper: 0.5); window is open: T1-tp < t < T2+tp
    min_box_size: float = 1.0  # boxes with a side shorter than this (pixels) are dropped ("too_small")
    lemmatize: bool = True  # singular head noun for the vocabulary ("dogs" -> "dog")
    min_word_length: int = 2  # a head noun with fewer letters is a tagging accident ("t", "x")
    stuff_words: frozenset = dataclasses.field(default_factory=lambda: load_word_list(STUFF_CLASSES_FILE))
    picture_words: frozenset = dataclasses.field(default_factory=lambda: load_word_list(PICTURE_WORDS_FILE))
    pluralia_tantum: frozenset = dataclasses.field(
        default_factory=lambda: load_word_list(PLURALIA_TANTUM_FILE))
    # class names (multi-word entries are read as noun compounds, see phrases.py); empty = no hint
    vocabulary: frozenset = dataclasses.field(default_factory=default_vocabulary)
    # a box with one side under min_box_size and the other at least this long (pixels) is a line
    # gesture (a sweep along a row of people, a stroke down a pole): widened instead of dropped
    min_line_length: float = 16.0
    line_width_ratio: float = 0.25  # ... to this fraction of its long side (0 = drop line boxes)

    def options(self) -> Dict[str, Any]:
        """The settings that change the output, for reports and resume checks (lists are hashed)."""
        def digest(words: frozenset) -> str:
            return hashlib.sha1("\n".join(sorted(words)).encode("utf-8")).hexdigest()[:12]

        return {
            "temporal_padding": self.temporal_padding,
            "min_box_size": self.min_box_size,
            "lemmatize": self.lemmatize,
            "min_word_length": self.min_word_length,
            "stuff_words": digest(self.stuff_words),
            "picture_words": digest(self.picture_words),
            "pluralia_tantum": digest(self.pluralia_tantum),
            "vocabulary": digest(self.vocabulary),
            "min_line_length": self.min_line_length,
            "line_width_ratio": self.line_width_ratio,
        }

