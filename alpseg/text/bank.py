"""The phrase bank file (phrase -> embedding): format, validation, reading, writing, extension.

A ``PhraseBank`` is a ``.npz`` file holding

* ``phrases``: N unique *normalized* phrases (``alpseg.text.prompts.normalize_phrase``), the keys;
* ``embeddings``: N x D float32 or float16, unit rows, row i belongs to ``phrases[i]``;
* ``encoder``: e.g. ``"open_clip:ViT-B-32:openai"`` (``alpseg.text.encoder.encoder_id``);
* ``prompts``: the prompt set, ``"vild"`` or ``"single"``.

Each phrase is encoded once: extending a bank encodes only phrases it lacks and appends their rows,
leaving the old rows bit-identical. A bank never mixes encoders or prompt sets: extending it with a
different encoder, or using it under a config that names another encoder / prompt set, is an error.
Files are written atomically (temporary file + ``os.replace``) and long extensions save periodically,
so an interrupted ``tools/embed_phrases.py`` resumes where it stopped. See docs/phrase_bank.md.

The vocabularies built on a bank (a test vocabulary from ``MODEL.OPEN_VOCAB.TEST_VOCABULARY``) are in
:mod:`alpseg.text.vocabulary`; their names are still importable from here for one release.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm import tqdm

from alpseg.utils.io import atomic_open

from .encoder import PhraseEncoder, encoder_id
from .prompts import normalize_phrase

__all__ = ["PhraseBank", "load_bank_for_cfg", "update_bank_file"]

# names that moved to alpseg.text.vocabulary, importable from this module for one release
_MOVED_TO_VOCABULARY = ("Vocabulary", "build_vocabulary", "load_test_vocabulary", "read_phrase_source")

logger = logging.getLogger(__name__)

_KEYS = ("phrases", "embeddings", "encoder", "prompts")
_DTYPES = (np.float32, np.float16)
_NORM_TOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float16): 2e-3}


def _unique_normalized(phrases: Iterable[str]) -> List[str]:
    """Normalized phrases, duplicates dropped (first occurrence wins); empty ones are an error."""
    seen: Dict[str, None] = {}
    for p in phrases:
        key = normalize_phrase(p)
        if not key:
            raise ValueError(f"phrase {p!r} is empty after normalization")
        seen.setdefault(key, None)
    return list(seen)


class PhraseBank:
    """Normalized phrases and their unit embeddings, tied to one encoder and one prompt set."""

    def __init__(self, phrases: Sequence[str], embeddings: np.ndarray, encoder: str, prompts: str):
        embeddings = np.asarray(embeddings)
        if embeddings.ndim != 2 or embeddings.shape[0] != len(phrases):
            raise ValueError(
                f"embeddings must be (N, D) with N = {len(phrases)} phrases, got {embeddings.shape}"
            )
        if embeddings.dtype not in [np.dtype(d) for d in _DTYPES]:
            raise ValueError(f"embeddings must be float32 or float16, got {embeddings.dtype}")
        if not encoder or not prompts:
            raise ValueError("a phrase bank needs non-empty 'encoder' and 'prompts' names")
        phrases = [str(p) for p in phrases]
        not_norm = [p for p in phrases if p != normalize_phrase(p) or not p]
        if not_norm:
            raise ValueError(f"bank keys must be non-empty normalized phrases; offending: {not_norm[:5]}")
        self._index = {p: i for i, p in enumerate(phrases)}
        if len(self._index) != len(phrases):
            dups = sorted({p for p in phrases if phrases.count(p) > 1})
            raise ValueError(f"duplicate phrases in bank: {dups[:5]}")
        if len(phrases):
            norms = np.linalg.norm(embeddings.astype(np.float64), axis=1)
            bad = np.flatnonzero(~(np.abs(norms - 1.0) <= _NORM_TOL[embeddings.dtype]))
            if bad.size:
                raise ValueError(
                    f"{bad.size} embedding rows are not unit-norm (e.g. {phrases[bad[0]]!r}: "
                    f"norm {norms[bad[0]]:.6f})"
                )
        self.phrases: List[str] = phrases
        self.embeddings: np.ndarray = embeddings
        self.encoder = str(encoder)
        self.prompts = str(prompts)

    # ----------------------------------------------------------------------------- construction / IO
    @classmethod
    def empty(cls, dim: int, encoder: str, prompts: str, dtype: str = "float32") -> "PhraseBank":
        return cls([], np.zeros((0, dim), dtype=np.dtype(dtype)), encoder, prompts)

    @classmethod
    def load(cls, path: str) -> "PhraseBank":
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"phrase bank {path!r} does not exist; build it with tools/embed_phrases.py "
                f"--phrases PHRASES --output {path}"
            )
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in _KEYS if k not in data.files]
            if missing:
                raise ValueError(f"{path}: not a phrase bank, missing arrays {missing}")
            return cls(
                data["phrases"].tolist(),
                data["embeddings"],
                str(data["encoder"][()]),
                str(data["prompts"][()]),
            )

    def save(self, path: str) -> None:
        """Write the bank atomically: a crash mid-write never leaves a truncated bank behind."""
        with atomic_open(path, "wb") as f:
            np.savez(
                f,
                phrases=np.asarray(self.phrases, dtype=np.str_),
                embeddings=self.embeddings,
                encoder=np.asarray(self.encoder),
                prompts=np.asarray(self.prompts),
            )
            f.flush()
            os.fsync(f.fileno())  # a bank is costly to rebuild: on disk before it replaces the old one

    # ----------------------------------------------------------------------------- queries
    def __len__(self) -> int:
        return len(self.phrases)

    def __contains__(self, phrase: str) -> bool:
        return normalize_phrase(phrase) in self._index

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def missing(self, phrases: Iterable[str]) -> List[str]:
        """Normalized phrases of ``phrases`` that the bank lacks (unique, first-seen order)."""
        return [p for p in _unique_normalized(phrases) if p not in self._index]

    def lookup(self, phrases: Sequence[str]) -> torch.Tensor:
        """float32 tensor (K, D) of the rows of ``phrases`` (normalized first), in order.

        Raises ``KeyError`` naming every phrase the bank lacks.
        """
        keys = [normalize_phrase(p) for p in phrases]
        absent = sorted({k for k in keys if k not in self._index})
        if absent:
            shown = ", ".join(repr(a) for a in absent[:20]) + (" ..." if len(absent) > 20 else "")
            raise KeyError(
                f"{len(absent)} phrase(s) not in the phrase bank ({self.encoder}, {self.prompts}): "
                f"{shown}; add them with tools/embed_phrases.py"
            )
        rows = self.embeddings[[self._index[k] for k in keys]] if keys else self.embeddings[:0]
        return torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32))

    def check_compatible(self, encoder: str, prompts: str) -> None:
        """Raise ``ValueError`` unless the bank was made by ``encoder`` with prompt set ``prompts``."""
        if encoder != self.encoder or prompts != self.prompts:
            raise ValueError(
                f"phrase bank was made with encoder {self.encoder!r} and prompts {self.prompts!r}, "
                f"but {encoder!r} and {prompts!r} were requested; embeddings of different encoders "
                f"or prompt sets cannot be mixed: use a separate bank file (or match the settings)"
            )

    # ----------------------------------------------------------------------------- extension
    def extend(
        self,
        phrases: Iterable[str],
        encoder: PhraseEncoder,
        progress: bool = False,
        checkpoint: Optional[Callable[["PhraseBank"], None]] = None,
        checkpoint_interval_s: float = 600.0,
    ) -> List[str]:
        """Encode the phrases the bank lacks and append them; return the added (normalized) phrases.

        ``encoder`` needs ``encoder_name``, ``prompts``, ``batch_size`` and ``encode(list) -> (n, D)``.
        Existing rows are never recomputed. ``checkpoint(bank)`` (e.g. a save) is called at most every
        ``checkpoint_interval_s`` seconds with the rows encoded so far, so long runs can resume.
        """
        self.check_compatible(encoder.encoder_name, encoder.prompts)
        new = self.missing(phrases)
        pending_p: List[str] = []
        pending_e: List[np.ndarray] = []
        last = time.monotonic()
        bs = max(1, int(encoder.batch_size))
        with tqdm(total=len(new), desc="new phrases", unit="phrase", disable=not progress) as bar:
            for start in range(0, len(new), bs):
                chunk = new[start : start + bs]
                emb = np.asarray(encoder.encode(chunk))
                if emb.shape != (len(chunk), self.dim):
                    raise ValueError(
                        f"encoder returned {emb.shape} for {len(chunk)} phrases; bank rows have D = {self.dim}"
                    )
                pending_p.extend(chunk)
                pending_e.append(emb)
                bar.update(len(chunk))
                if checkpoint is not None and time.monotonic() - last >= checkpoint_interval_s:
                    self._append(pending_p, pending_e)
                    pending_p, pending_e = [], []
                    checkpoint(self)
                    last = time.monotonic()
        self._append(pending_p, pending_e)
        return new

    def _append(self, phrases: List[str], rows: List[np.ndarray]) -> None:
        if not phrases:
            return
        new_rows = np.concatenate(rows, axis=0).astype(self.embeddings.dtype)
        extended = PhraseBank(self.phrases + phrases, np.concatenate([self.embeddings, new_rows]),
                              self.encoder, self.prompts)  # re-validates norms and uniqueness
        self.phrases, self.embeddings, self._index = extended.phrases, extended.embeddings, extended._index


def update_bank_file(
    path: str,
    phrases: Iterable[str],
    encoder: PhraseEncoder,
    dtype: str = "float32",
    progress: bool = True,
    checkpoint_interval_s: float = 600.0,
) -> Tuple[PhraseBank, List[str]]:
    """Create the bank at ``path`` or extend the existing one with ``phrases``; return it and the added.

    ``dtype`` applies to a new bank only; an existing bank keeps its dtype. Progress is saved every
    ``checkpoint_interval_s`` seconds, so re-running after an interruption encodes only what is left.
    """
    if os.path.exists(path):
        bank = PhraseBank.load(path)
        bank.check_compatible(encoder.encoder_name, encoder.prompts)
    else:
        bank = PhraseBank.empty(encoder.embed_dim, encoder.encoder_name, encoder.prompts, dtype)
    added = bank.extend(
        phrases, encoder, progress=progress, checkpoint=lambda b: b.save(path),
        checkpoint_interval_s=checkpoint_interval_s,
    )
    if added or not os.path.exists(path):
        bank.save(path)
    return bank, added


def _cfg_encoder(cfg) -> Tuple[str, str]:
    ov = cfg.MODEL.OPEN_VOCAB
    return encoder_id(ov.TEXT_ENCODER, ov.PRETRAINED), ov.PROMPTS


def load_bank_for_cfg(cfg) -> PhraseBank:
    """Load ``MODEL.OPEN_VOCAB.EMBEDDINGS`` and check it matches the config's encoder and prompts.

    The bank must have been made by ``TEXT_ENCODER`` with ``PRETRAINED`` weights (a checkpoint path is
    compared by file name) and the ``PROMPTS`` set, and its rows must have ``EMBED_DIM`` entries.
    """
    ov = cfg.MODEL.OPEN_VOCAB
    if not ov.EMBEDDINGS:
        raise ValueError(
            "MODEL.OPEN_VOCAB.EMBEDDINGS is empty; build a phrase bank with tools/embed_phrases.py "
            "and point the key at it"
        )
    bank = PhraseBank.load(ov.EMBEDDINGS)
    enc, prompts = _cfg_encoder(cfg)
    try:
        bank.check_compatible(enc, prompts)
    except ValueError as e:
        raise ValueError(f"{ov.EMBEDDINGS}: {e} (MODEL.OPEN_VOCAB.TEXT_ENCODER/PRETRAINED/PROMPTS)") from None
    if bank.dim != ov.EMBED_DIM:
        raise ValueError(
            f"{ov.EMBEDDINGS}: bank rows have {bank.dim} dims but MODEL.OPEN_VOCAB.EMBED_DIM is {ov.EMBED_DIM}"
        )
    return bank


def __getattr__(name: str):
    # PEP 562: resolved on first use, because alpseg.text.vocabulary imports this module
    if name in _MOVED_TO_VOCABULARY:
        from . import vocabulary

        return getattr(vocabulary, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
