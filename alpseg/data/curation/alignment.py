"""Caption words -> utterance times (``timed_caption``)."""
from __future__ import annotations

import bisect
import difflib
import re
from typing import Iterable, List, Optional, Sequence, Tuple

from ..narratives import Utterance

__all__ = ["WordTimer"]

_WORD_RE = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")


class WordTimer:
    """Times of caption words, from the utterances of ``timed_caption``.

    Both texts are cut into word units; unit ``i`` of the caption gets the interval of the utterance
    holding the unit it is matched to. Utterances may hold several words ("In this") and
    punctuation ("dog,"); a unit that has no counterpart stays untimed.
    """

    def __init__(self, caption: str, utterances: Sequence[Utterance]):
        units = [(m.start(), m.end(), m.group().lower()) for m in _WORD_RE.finditer(caption)]
        self._starts = [u[0] for u in units]
        self._ends = [u[1] for u in units]
        caption_words = [u[2] for u in units]
        spoken: List[str] = []
        owner: List[int] = []
        for k, utterance in enumerate(utterances):
            for m in _WORD_RE.finditer(utterance.text):
                spoken.append(m.group().lower())
                owner.append(k)
        if caption_words == spoken:
            pairs: Iterable[Tuple[int, int]] = zip(range(len(spoken)), range(len(spoken)))
        else:
            matcher = difflib.SequenceMatcher(None, caption_words, spoken, autojunk=False)
            pairs = [(a + d, b + d) for a, b, size in matcher.get_matching_blocks() for d in range(size)]
        self._times: List[Optional[Tuple[float, float]]] = [None] * len(units)
        for i, j in pairs:
            u = utterances[owner[j]]
            self._times[i] = (u.start, u.end)

    def interval(self, char_start: int, char_end: int) -> Tuple[Optional[Tuple[float, float]], int, int]:
        """Union (T1, T2) of the intervals of the words in ``[char_start, char_end)``.

        Returns ``(interval or None, number of timed words, number of words)``.
        """
        lo = bisect.bisect_right(self._ends, char_start)
        hi = bisect.bisect_left(self._starts, char_end)
        times = [t for t in self._times[lo:hi] if t is not None]
        if not times:
            return None, 0, max(hi - lo, 0)
        return (min(t[0] for t in times), max(t[1] for t in times)), len(times), hi - lo

