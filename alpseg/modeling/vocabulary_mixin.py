"""Phrase bank, batch vocabulary and test vocabulary held by an open-vocabulary meta-architecture.

(How a test vocabulary is read from a dataset, file or list is :mod:`alpseg.text.vocabulary`; this
module is the model's side: when it loads, gathers and swaps them.)

Both open-vocabulary models (FCOS-MO, Mask R-CNN*) look training phrases up in the phrase bank named
by ``MODEL.OPEN_VOCAB.EMBEDDINGS`` and classify test regions against a *test vocabulary* (by default
the ``thing_classes`` of ``DATASETS.TEST[0]``). :class:`PhraseVocabularyMixin` holds both, loads them
lazily (a 51K-phrase bank is only read by a model that trains or evaluates) and lets a caller swap
the vocabulary (``set_test_vocabulary``) to evaluate on another dataset or to run the demo with any
list of phrases.

**Batch vocabulary and negatives.** In training, a region's phrase competes in a softmax with the
other phrases of the batch, which act as its negatives. With several processes
the batch is split over them; ``MODEL.OPEN_VOCAB.NEGATIVES`` chooses whose phrases:

* ``"global"`` (default, the paper's): every process gathers the phrases of all processes' images
  (strings only, with ``comm.all_gather``) and builds the same vocabulary, ordered by rank then by
  first appearance: what one process holding the whole batch would build;
* ``"local"``: each process uses its own images' phrases only.
"""
from __future__ import annotations

import functools
import logging
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from detectron2.structures import Instances
from detectron2.utils import comm

from ..text.prompts import normalize_phrase

__all__ = ["PhraseVocabularyMixin", "vocabulary_kwargs_from_config", "index_phrases", "instance_phrases",
           "batch_vocabulary", "NEGATIVES_MODES"]

NEGATIVES_MODES = ("global", "local")

logger = logging.getLogger(__name__)


def vocabulary_kwargs_from_config(cfg) -> Dict[str, Any]:
    """The ``__init__`` keyword arguments of :class:`PhraseVocabularyMixin` for ``cfg``."""
    from ..text.bank import load_bank_for_cfg
    from ..text.vocabulary import load_test_vocabulary

    return {
        "phrase_bank_loader": functools.partial(load_bank_for_cfg, cfg.clone()),
        "test_vocabulary_loader": functools.partial(load_test_vocabulary, cfg.clone()),
        "default_test_dataset": cfg.DATASETS.TEST[0] if len(cfg.DATASETS.TEST) else None,
        "negatives": cfg.MODEL.OPEN_VOCAB.NEGATIVES,
    }


def index_phrases(phrase_lists: Sequence[Sequence[str]], index: Dict[str, int], device) -> List[Tensor]:
    """Map each list of phrases to indices in ``index`` (new phrases are appended to it, in order).

    ``index`` thus ends up as the batch vocabulary in first-appearance order; the returned tensors
    are long tensors on ``device``.
    """
    return [
        torch.as_tensor([index.setdefault(p, len(index)) for p in phrases], dtype=torch.long, device=device)
        for phrases in phrase_lists
    ]


def batch_vocabulary(
    groups: Sequence[Sequence[Sequence[str]]], device, negatives: str = "global"
) -> Tuple[List[str], List[List[Tensor]]]:
    """The batch vocabulary and, for each group of per-image phrase lists, each list's indices into it.

    ``negatives="global"`` gathers every process's phrases (see the module docstring); all processes
    must then call this together. With one process both modes are the same.
    """
    if negatives not in NEGATIVES_MODES:
        raise ValueError(f"MODEL.OPEN_VOCAB.NEGATIVES must be one of {NEGATIVES_MODES}, got {negatives!r}")
    local: Dict[str, None] = {}
    for lists in groups:
        for phrases in lists:
            for p in phrases:
                local.setdefault(p, None)
    index: Dict[str, int] = {}
    if negatives == "global" and comm.get_world_size() > 1:
        for part in comm.all_gather(list(local)):
            for p in part:
                index.setdefault(p, len(index))
    else:
        index = {p: i for i, p in enumerate(local)}
    return list(index), [index_phrases(lists, index, device) for lists in groups]


def instance_phrases(inst: Instances, model_name: str) -> List[str]:
    """``inst.gt_phrases`` (docs/architecture.md, instance fields), or ``[]`` for an empty image; a clear error when missing."""
    if len(inst) == 0:
        return []
    if not inst.has("gt_phrases"):
        raise KeyError(f"{model_name} needs Instances.gt_phrases (docs/architecture.md, instance fields); use alpseg's dataset mapper")
    return list(inst.gt_phrases)


class PhraseVocabularyMixin:
    """Mix into an ``nn.Module`` meta-architecture that has a ``device`` property.

    Call :meth:`_init_vocabulary` from ``__init__``. Training code calls :meth:`embed_phrases` with
    the batch's phrases; inference code reads :attr:`test_vocabulary`.
    """

    def _init_vocabulary(
        self,
        phrase_bank: Any = None,
        phrase_bank_loader: Optional[Callable[[], Any]] = None,
        test_vocabulary_loader: Optional[Callable[[Any, Optional[str]], Any]] = None,
        default_test_dataset: Optional[str] = None,
        negatives: str = "global",
    ) -> None:
        """
        Args:
            phrase_bank: an object with ``lookup(phrases) -> (K, D) tensor`` (``PhraseBank``); if
                None, ``phrase_bank_loader()`` makes it on first use.
            test_vocabulary_loader: ``(bank, default_test_dataset) -> Vocabulary`` (phrases and
                embeddings), used on the first inference unless :meth:`set_test_vocabulary` was called.
            default_test_dataset: the dataset whose ``thing_classes`` are the test vocabulary when
                ``MODEL.OPEN_VOCAB.TEST_VOCABULARY`` is empty (``DATASETS.TEST[0]``).
            negatives: ``"global"`` or ``"local"`` batch vocabulary (module docstring).
        """
        if negatives not in NEGATIVES_MODES:
            raise ValueError(f"MODEL.OPEN_VOCAB.NEGATIVES must be one of {NEGATIVES_MODES}, got {negatives!r}")
        self.negatives = negatives
        self._phrase_bank = phrase_bank
        self._phrase_bank_loader = phrase_bank_loader
        self._test_vocabulary_loader = test_vocabulary_loader
        self.default_test_dataset = default_test_dataset
        self._test_vocab: Optional[Tuple[List[str], Tensor]] = None

    @property
    def phrase_bank(self):
        """The phrase bank (``MODEL.OPEN_VOCAB.EMBEDDINGS``, checked against the config's encoder)."""
        if self._phrase_bank is None:
            if self._phrase_bank_loader is None:
                raise ValueError(f"{type(self).__name__} has no phrase bank: pass phrase_bank or build it from a config")
            self._phrase_bank = self._phrase_bank_loader()
        return self._phrase_bank

    @phrase_bank.setter
    def phrase_bank(self, bank) -> None:
        """Use ``bank`` (anything with ``lookup(phrases) -> (K, D)``) instead of the configured file."""
        self._phrase_bank = bank

    def batch_vocabulary(self, *groups: Sequence[Sequence[str]]) -> Tuple[List[str], List[List[Tensor]]]:
        """:func:`batch_vocabulary` with this model's device and ``negatives`` mode."""
        return batch_vocabulary(groups, self.device, self.negatives)

    def embed_phrases(self, phrases: Sequence[str]) -> Tensor:
        """(K, D) float32 embeddings of ``phrases`` on the model's device (``KeyError`` if missing)."""
        emb = self.phrase_bank.lookup(list(phrases))
        return torch.as_tensor(emb).to(device=self.device, dtype=torch.float32)

    def set_test_vocabulary(self, phrases: Sequence[str], embeddings: Optional[Tensor] = None) -> None:
        """Classes to detect at test time (``pred_classes`` index into ``phrases``).

        Without ``embeddings`` the phrases are looked up in the phrase bank. Call this before
        evaluating on a dataset other than ``DATASETS.TEST[0]``.
        """
        phrases = [normalize_phrase(p) for p in phrases]
        if not phrases:
            raise ValueError("empty test vocabulary")
        emb = self.embed_phrases(phrases) if embeddings is None else embeddings.to(self.device).float()
        if emb.shape[0] != len(phrases):
            raise ValueError(f"{len(phrases)} phrases but {emb.shape[0]} embeddings")
        self._test_vocab = (phrases, emb)

    def use_dataset_vocabulary(self, dataset_name: str) -> None:
        """Classify against the test vocabulary configured for ``dataset_name`` (its class names
        unless ``MODEL.OPEN_VOCAB.TEST_VOCABULARY`` says otherwise), loaded on first use."""
        self.default_test_dataset = dataset_name
        self._test_vocab = None

    @property
    def test_vocabulary(self) -> Tuple[List[str], Tensor]:
        """(phrases, (K, D) embeddings) of the test vocabulary, loaded from the config on first use."""
        if self._test_vocab is None:
            if self._test_vocabulary_loader is None:
                raise ValueError(f"{type(self).__name__} has no test vocabulary: call set_test_vocabulary() first")
            vocab = self._test_vocabulary_loader(self.phrase_bank, self.default_test_dataset)
            self.set_test_vocabulary(vocab.phrases, vocab.embeddings)
            logger.info("%s test vocabulary: %d phrases", type(self).__name__, len(self._test_vocab[0]))
        phrases, emb = self._test_vocab
        if emb.device != self.device:  # the model was moved after the vocabulary was set
            emb = emb.to(self.device)
            self._test_vocab = (phrases, emb)
        return self._test_vocab
