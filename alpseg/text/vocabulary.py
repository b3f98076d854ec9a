"""Vocabularies: the phrases a model classifies against, read from a dataset, a file or a list.

``read_phrase_source`` reads a phrase source (a registered dataset's ``thing_classes``, a file, or a
comma list); ``build_vocabulary`` makes a test vocabulary of it (normalized, in prediction order,
unambiguous); ``load_test_vocabulary`` pairs it with its phrase-bank rows (``Vocabulary``).

The training vocabulary is the set of phrases of a batch, looked up with ``PhraseBank.lookup`` by the
model (:mod:`alpseg.modeling.vocabulary_mixin`). The background class is not a phrase: its embedding
is the zero vector (appended by the classifier, ``alpseg.modeling.open_vocab``), so its cosine logit
is always 0.
"""
from __future__ import annotations

import difflib
import json
import logging
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch

from .bank import PhraseBank, load_bank_for_cfg
from .encoder import PhraseEncoder
from .prompts import normalize_phrase

__all__ = ["Vocabulary", "build_vocabulary", "load_test_vocabulary", "read_phrase_source"]

logger = logging.getLogger(__name__)


_FILE_EXTENSIONS = (".txt", ".json", ".csv", ".lst")


def _registered_datasets() -> List[str]:
    from detectron2.data import DatasetCatalog

    return list(DatasetCatalog.list())


def _dataset_classes(name: str) -> List[str]:
    from detectron2.data import DatasetCatalog, MetadataCatalog

    classes = MetadataCatalog.get(name).get("thing_classes", None)
    if classes is None:  # e.g. register_coco_instances sets thing_classes only once the data is loaded
        DatasetCatalog.get(name)
        classes = MetadataCatalog.get(name).get("thing_classes", None)
    if not classes:
        raise ValueError(f"dataset {name!r} has no thing_classes in its metadata")
    return list(classes)


def _read_phrase_file(path: str) -> List[str]:
    if path.endswith(".json"):
        with open(path, "r", encoding="utf-8") as f:
            data = json.load(f)
        if isinstance(data, dict) and isinstance(data.get("phrases"), list):
            return [str(p) for p in data["phrases"]]
        if isinstance(data, list) and all(isinstance(p, str) for p in data):
            return data
        raise ValueError(f"{path}: expected an ALP JSON with a 'phrases' list, or a JSON list of strings")
    with open(path, "r", encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]


def read_phrase_source(spec: str) -> List[str]:
    """Raw phrases named by ``spec``, in order.

    ``spec`` is, in this order of precedence: a registered dataset name (its ``thing_classes``); an
    existing file (one phrase a line, ``#`` comments allowed; or ``.json``: an ALP file's ``phrases``
    list or a plain list); otherwise a comma-separated list. A spec without a comma that looks like a
    dataset name or a path (contains ``_``, ``/`` or a file extension) but is neither is an error, so a
    typo is not silently taken as a one-phrase vocabulary; end it with a comma to mean the phrase.
    """
    spec = spec.strip()
    if not spec:
        raise ValueError("empty phrase source")
    if "," not in spec and spec in _registered_datasets():
        return _dataset_classes(spec)
    if os.path.isfile(os.path.expanduser(spec)):
        return _read_phrase_file(os.path.expanduser(spec))
    if "," not in spec and ("_" in spec or "/" in spec or spec.lower().endswith(_FILE_EXTENSIONS)):
        close = difflib.get_close_matches(spec, _registered_datasets(), n=3)
        raise ValueError(
            f"{spec!r} is neither a registered dataset nor an existing file"
            + (f" (did you mean {close}?)" if close else "")
            + "; to use it as a single phrase, add a trailing comma"
        )
    return [p for p in spec.split(",") if p.strip()]


def build_vocabulary(spec: str, default_dataset: Optional[str] = None) -> List[str]:
    """Test vocabulary (normalized phrases, prediction order) from ``MODEL.OPEN_VOCAB.TEST_VOCABULARY``.

    ``spec`` is read by ``read_phrase_source``; ``""`` means the ``thing_classes`` of
    ``default_dataset`` (the dataset being evaluated). Phrases that coincide after normalization make
    class indices ambiguous and are an error, as is an empty vocabulary.
    """
    spec = (spec or "").strip()
    if not spec:
        if not default_dataset:
            raise ValueError(
                "MODEL.OPEN_VOCAB.TEST_VOCABULARY is empty and no test dataset was given to take "
                "the class names from"
            )
        spec = default_dataset
    raw = read_phrase_source(spec)
    phrases = [normalize_phrase(p) for p in raw]
    empty = [r for r, p in zip(raw, phrases) if not p]
    if empty:
        raise ValueError(f"test vocabulary {spec!r}: phrases empty after normalization: {empty[:5]}")
    if not phrases:
        raise ValueError(f"test vocabulary {spec!r} is empty")
    seen: Dict[str, str] = {}
    for r, p in zip(raw, phrases):
        if p in seen:
            raise ValueError(f"test vocabulary {spec!r}: {seen[p]!r} and {r!r} both normalize to {p!r}")
        seen[p] = r
    return phrases


@dataclass(frozen=True)
class Vocabulary:
    """A test vocabulary: normalized phrases in prediction order and their unit embeddings (K, D)."""

    phrases: Tuple[str, ...]
    embeddings: torch.Tensor

    def __len__(self) -> int:
        return len(self.phrases)


def load_test_vocabulary(
    cfg, bank: Optional[PhraseBank] = None, default_dataset: Optional[str] = None
) -> Vocabulary:
    """The test ``Vocabulary`` of ``cfg`` (``MODEL.OPEN_VOCAB.TEST_VOCABULARY``) with embeddings.

    Phrases absent from the bank are a ``KeyError`` naming them, unless
    ``MODEL.OPEN_VOCAB.ENCODE_MISSING`` is True: then they are encoded on the fly with the config's
    encoder (which needs its weights) and added to the in-memory bank only; the bank file is never
    modified at test time (run tools/embed_phrases.py to keep them).
    """
    bank = bank if bank is not None else load_bank_for_cfg(cfg)
    phrases = build_vocabulary(cfg.MODEL.OPEN_VOCAB.TEST_VOCABULARY, default_dataset)
    missing = bank.missing(phrases)
    if missing and cfg.MODEL.OPEN_VOCAB.ENCODE_MISSING:
        ov = cfg.MODEL.OPEN_VOCAB
        logger.info("encoding %d test phrases missing from the phrase bank", len(missing))
        bank.extend(missing, PhraseEncoder(ov.TEXT_ENCODER, ov.PRETRAINED, ov.PROMPTS))
    return Vocabulary(tuple(phrases), bank.lookup(phrases))
