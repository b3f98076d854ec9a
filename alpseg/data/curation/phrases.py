"""Phrases of a POS-tagged caption: adjectives followed by nouns, filtered by word lists.

Desai et al. take adjectives followed by consecutive nouns. The small spaCy tagger mislabels common
nouns in narration ("a green dustbin": PROPN; "a croissant on the table": ADJ; "a fedora": X;
"a frying pan": VERB), so its part-of-speech tags are corrected by rules before runs are read
(docs/alp_curation.md, Phrases, gives the reasons and the measured effect):

1. a *lowercase* PROPN or X word is a common noun (proper names are capitalized in LocNar captions);
2. a word sequence that is an entry of ``config.vocabulary`` (class names, plural or singular) is a
   noun compound whatever its tags; a one-word entry tagged ADJ and not followed by a noun is a noun;
3. a present or past participle between a determiner/adjective and a noun is an adjective
   ("a frying pan", "the parked car");
4. the last adjective of a run after "a"/"an" that no noun follows is the noun ("a little starfish.").

A phrase is then a maximal run of adjectives, coordinated adjectives included ("brown and white
horse"), followed by a maximal run of nouns. Every candidate that is not kept is counted under a
reason: ``proper_noun`` (a capitalized PROPN run), ``short_word``, ``stuff``, ``picture_word``.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .config import CurationConfig

__all__ = ["PhraseSpan", "extract_phrases", "NON_DESCRIPTIVE_ADJECTIVES"]

# Adjectives that quantify, order or compare instead of describing the object; stripped from the
# front of a phrase ("many other people" -> "people", "the first car" -> "car").
NON_DESCRIPTIVE_ADJECTIVES = frozenset(
    "other many several few various different same such certain whole entire own numerous multiple "
    "single next last first second third fourth fifth additional main particular similar total more "
    "most less least much enough only extra".split()
)
_HYPHENS = frozenset({"-", "\u2010", "\u2011"})


@dataclasses.dataclass(frozen=True)
class PhraseSpan:
    """A phrase found in a caption: normalized vocabulary form, surface form, character span."""

    phrase: str  # lowercased, head noun lemmatized: the vocabulary / embedding-bank key
    text: str  # lowercased surface form as spoken
    char_start: int
    char_end: int


@dataclasses.dataclass
class _Word:
    """Tokens joined by intra-word hyphens; POS and tag are those of the last token."""

    lower: str
    prefix: str  # lowercased text before the last token ("t-" of "t-shirts")
    last: Any  # the last spaCy token
    pos: str
    tag: str
    start: int
    end: int
    cased: bool  # any capital letter in the word as written


def _words(doc) -> List[_Word]:
    # one pass over the Cython tokens, attributes read once each (the hot loop of curation)
    tokens = list(doc)
    texts = [t.text for t in tokens]
    spaced = [t.whitespace_ != "" for t in tokens]
    out: List[_Word] = []
    i, n = 0, len(tokens)
    while i < n:
        j = i
        # token, hyphen, token with no whitespace in between -> one word
        while (j + 2 < n and not spaced[j] and texts[j + 1] in _HYPHENS and not spaced[j + 1]
               and not tokens[j + 2].is_punct):
            j += 2
        last = tokens[j]
        text = texts[j]
        start = last.idx
        if j == i:
            prefix = ""
            cased = text != text.lower()
        else:
            prefix = "".join(texts[m] + (" " if spaced[m] else "") for m in range(i, j)).lower()
            cased = any(texts[m] != texts[m].lower() for m in range(i, j + 1))
            start = tokens[i].idx
        out.append(_Word(lower=prefix + text.lower(), prefix=prefix, last=last, pos=last.pos_, tag=last.tag_,
                         start=start, end=last.idx + len(text), cased=cased))
        i = j + 1
    return out


_VOCABULARY_CACHE: Dict[frozenset, Tuple[Dict[Tuple[str, ...], str], frozenset, int]] = {}
_ARTICLES = frozenset({"a", "an"})
_COORDINATORS = frozenset({"and", "or"})
_FUNCTION_WORDS = frozenset({"and", "or", "of", "with", "for", "in", "on"})
_NOT_NOUNS = frozenset({"etc", "e.g", "i.e", "ok", "okay"})  # lowercase X tokens that are no object


def _vocabulary_index(vocabulary: frozenset) -> Tuple[Dict[Tuple[str, ...], str], frozenset, int]:
    """``(multi-word entry variants -> entry, one-word entries and variants, longest entry)``.

    Variants add a plural or singular of the last word (s, es, ies) so "teddy bears" matches
    "teddy bear"; over-generated forms are harmless (they only ever match real words).
    """
    cached = _VOCABULARY_CACHE.get(vocabulary)
    if cached is not None:
        return cached
    multi: Dict[Tuple[str, ...], str] = {}
    single = set()
    for entry in vocabulary:
        words = tuple(entry.split())
        if _FUNCTION_WORDS.intersection(words):  # "chest of drawers", "luggage and bags": left to the tagger
            continue
        last = words[-1]
        forms = {last, last + "s", last + "es"}
        if last.endswith("y"):
            forms.add(last[:-1] + "ies")
        if last.endswith("s"):
            forms.add(last[:-1])
        for form in forms:
            variant = words[:-1] + (form,)
            if len(variant) == 1:
                single.add(form)
            else:
                multi[variant] = entry
    out = (multi, frozenset(single), max((len(k) for k in multi), default=1))
    _VOCABULARY_CACHE[vocabulary] = out
    return out


def _kinds(words: Sequence[_Word], config: CurationConfig) -> List[str]:
    """The part of speech phrase reading uses for each word: spaCy's, corrected by the module's rules."""
    n = len(words)
    kinds = [w.pos for w in words]
    for i, w in enumerate(words):  # rule 1
        if (w.pos in ("PROPN", "X") and not w.cased and w.lower not in _NOT_NOUNS
                and sum(c.isalpha() for c in w.lower) >= 2):
            kinds[i] = "NOUN"
    if config.vocabulary:  # rule 2
        multi, single, longest = _vocabulary_index(config.vocabulary)
        lowers = [w.lower for w in words]
        i = 0
        while i < n:
            for size in range(min(longest, n - i), 1, -1):
                if tuple(lowers[i:i + size]) in multi:
                    kinds[i:i + size] = ["NOUN"] * size
                    i += size - 1
                    break
            i += 1
        for i, w in enumerate(words):
            if kinds[i] == "ADJ" and w.lower in single and (i + 1 == n or kinds[i + 1] != "NOUN"):
                kinds[i] = "NOUN"
    for i in range(1, n - 1):  # rule 3
        if (kinds[i] == "VERB" and words[i].tag in ("VBG", "VBN") and kinds[i + 1] == "NOUN"
                and (kinds[i - 1] in ("DET", "ADJ") or words[i - 1].tag == "PRP$")):
            kinds[i] = "ADJ"
    for i in range(1, n):  # rule 4
        if kinds[i] == "ADJ" and words[i - 1].lower in _ARTICLES:
            j = i
            while j < n and kinds[j] == "ADJ":
                j += 1
            last = words[j - 1]
            if ((j == n or kinds[j] in ("PUNCT", "ADP", "CCONJ", "SCONJ", "PRON", "DET", "AUX"))
                    and last.lower not in NON_DESCRIPTIVE_ADJECTIVES and last.lower.isalpha()):
                kinds[j - 1] = "NOUN"
    return kinds


def _suffix_entry(words: Sequence[str], vocabulary: frozenset) -> Optional[str]:
    """The longest suffix of ``words`` that is an entry of ``vocabulary``, or None."""
    for k in range(len(words)):
        suffix = " ".join(words[k:])
        if suffix in vocabulary:
            return suffix
    return None


def _protected(normalized: Sequence[str], config: CurationConfig, entry: str) -> bool:
    """A stuff/picture match inside a longer vocabulary name ("drinking straw" ends with "straw")."""
    if not config.vocabulary:
        return False
    thing = _suffix_entry(normalized, config.vocabulary)
    return thing is not None and len(thing) > len(entry)


def extract_phrases(doc, config: CurationConfig, lemmatize: Optional[Callable[[Any], str]] = None,
                    dropped_words: Optional[Counter] = None) -> Tuple[List[PhraseSpan], Counter]:
    """Phrases of a POS-tagged caption, and the count of candidates dropped per reason.

    Reasons: ``proper_noun``, ``short_word``, ``stuff``, ``picture_word``. ``lemmatize(token)`` gives
    a plural head noun's lemma (see :func:`head_lemmatizer`); without it the token's ``lemma_`` is
    used. ``dropped_words``, when given, counts ``(reason, phrase)`` of every dropped candidate.
    """
    words = _words(doc)
    kinds = _kinds(words, config)
    kept: List[PhraseSpan] = []
    dropped: Counter = Counter()

    def drop(reason: str, phrase: str) -> None:
        dropped[reason] += 1
        if dropped_words is not None:
            dropped_words[(reason, phrase)] += 1

    i, n = 0, len(words)
    while i < n:
        if kinds[i] == "PROPN":  # a capitalized name: counted, never a phrase
            j = i
            while j < n and kinds[j] == "PROPN":
                j += 1
            drop("proper_noun", " ".join(w.lower for w in words[i:j]))
            i = j
            continue
        if kinds[i] not in ("ADJ", "NOUN"):
            i += 1
            continue
        j = i
        while j < n and (kinds[j] == "ADJ" or (  # "brown and white": coordinated adjectives stay together
                words[j].lower in _COORDINATORS and kinds[j - 1] == "ADJ" and j + 1 < n and kinds[j + 1] == "ADJ"
                and j > i)):
            j += 1
        k = j
        while k < n and kinds[k] == "NOUN":
            k += 1
        if k == j:  # adjectives not followed by a noun
            i = max(j, i + 1)
            continue
        lo, i = i, k
        while lo < k - 1 and (words[lo].lower in _COORDINATORS or (
                kinds[lo] == "ADJ" and words[lo].lower in NON_DESCRIPTIVE_ADJECTIVES)):
            lo += 1
        run = words[lo:k]
        head = run[-1]
        surface = [w.lower for w in run]
        plural = head.tag in ("NNS", "NNPS") and head.lower not in config.pluralia_tantum
        lemma = ""
        if config.lemmatize and plural:
            lemma = (lemmatize(head.last) if lemmatize is not None else head.last.lemma_).lower()
        normalized = surface[:-1] + [head.prefix + lemma if lemma else head.lower]
        phrase = " ".join(normalized)
        if sum(c.isalpha() for c in normalized[-1]) < config.min_word_length:
            drop("short_word", phrase)
            continue
        for reason, vocabulary in (("stuff", config.stuff_words), ("picture_word", config.picture_words)):
            entry = _suffix_entry(normalized, vocabulary) or _suffix_entry(surface, vocabulary)
            if entry is not None and not _protected(normalized, config, entry):
                drop(reason, phrase)
                break
        else:
            kept.append(PhraseSpan(phrase, " ".join(surface), run[0].start, run[-1].end))
    return kept, dropped
