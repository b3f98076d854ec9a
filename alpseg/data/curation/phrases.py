"""Phrases of a POS-tagged caption: adjectives followed by nouns, filtered by word lists."""
from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any, Callable, List, Optional, Sequence, Tuple

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


def _words(doc) -> List[_Word]:
    tokens = list(doc)
    out: List[_Word] = []
    i = 0
    while i < len(tokens):
        j = i
        # token, hyphen, token with no whitespace in between -> one word
        while (j + 2 < len(tokens) and tokens[j].whitespace_ == "" and tokens[j + 1].text in _HYPHENS
               and tokens[j + 1].whitespace_ == "" and not tokens[j + 2].is_punct):
            j += 2
        group = tokens[i:j + 1]
        last = group[-1]
        prefix = "".join(t.text_with_ws for t in group[:-1]).lower()
        out.append(_Word(lower=prefix + last.text.lower(), prefix=prefix, last=last, pos=last.pos_, tag=last.tag_,
                         start=group[0].idx, end=last.idx + len(last.text)))
        i = j + 1
    return out


def _suffix_match(words: Sequence[str], vocabulary: frozenset) -> bool:
    return any(" ".join(words[k:]) in vocabulary for k in range(len(words)))


def extract_phrases(doc, config: CurationConfig,
                    lemmatize: Optional[Callable[[Any], str]] = None) -> Tuple[List[PhraseSpan], Counter]:
    """Phrases of a POS-tagged caption, and the count of candidates dropped per reason.

    Reasons: ``stuff``, ``picture_word``, ``short_word``. ``lemmatize(token)`` gives a plural head
    noun's lemma (see :func:`head_lemmatizer`); without it the token's ``lemma_`` is used.
    """
    words = _words(doc)
    kept: List[PhraseSpan] = []
    dropped: Counter = Counter()
    i, n = 0, len(words)
    while i < n:
        if words[i].pos not in ("ADJ", "NOUN"):
            i += 1
            continue
        j = i
        while j < n and words[j].pos == "ADJ":
            j += 1
        k = j
        while k < n and words[k].pos == "NOUN":
            k += 1
        if k == j:  # adjectives not followed by a noun
            i = max(j, i + 1)
            continue
        run = words[i:k]
        i = k
        while run[0].pos == "ADJ" and run[0].lower in NON_DESCRIPTIVE_ADJECTIVES:
            run = run[1:]
        head = run[-1]
        surface = [w.lower for w in run]
        plural = head.tag in ("NNS", "NNPS") and head.lower not in config.pluralia_tantum
        lemma = ""
        if config.lemmatize and plural:
            lemma = (lemmatize(head.last) if lemmatize is not None else head.last.lemma_).lower()
        normalized = surface[:-1] + [head.prefix + lemma if lemma else head.lower]
        if sum(c.isalpha() for c in normalized[-1]) < config.min_word_length:
            dropped["short_word"] += 1
        elif _suffix_match(normalized, config.stuff_words) or _suffix_match(surface, config.stuff_words):
            dropped["stuff"] += 1
        elif _suffix_match(normalized, config.picture_words) or _suffix_match(surface, config.picture_words):
            dropped["picture_word"] += 1
        else:
            kept.append(PhraseSpan(" ".join(normalized), " ".join(surface), run[0].start, run[-1].end))
    return kept, dropped

