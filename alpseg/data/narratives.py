"""Localized Narratives reader: streams JSON Lines files and validates every record.

A Localized Narratives line (Pont-Tuset et al. 2020) holds ``dataset_id``, ``image_id``,
``annotator_id``, ``caption``, ``timed_caption`` (``[{utterance, start_time, end_time}]``, seconds),
``traces`` (list of segments, each ``[{x, y, t}]``; x, y normalized to the image, possibly outside
[0, 1]; t in seconds, on the clock of ``timed_caption``) and ``voice_recording``.

The real files are large (LocNar-OID: 504K lines, several GB), so records are read one line at a
time and never held all at once. A line that cannot be used becomes a :class:`NarrativeFormatError`
whose ``reason`` is a short, countable key (``invalid_json``, ``missing_traces``, ``no_traces``, ...):
:func:`iter_narratives` counts it and moves on, or re-raises it (naming file and line) when strict.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import itertools
import json
import math
import operator
import os
import zlib
from collections import Counter
from typing import IO, Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import orjson

__all__ = [
    "Utterance",
    "Narrative",
    "NarrativeFormatError",
    "NarrativeInputError",
    "is_gzip",
    "parse_narrative",
    "parse_narrative_line",
    "iter_narrative_lines",
    "iter_narratives",
    "count_lines",
]

PathList = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One timed piece of the transcription: a word, several words, or words with punctuation."""

    text: str
    start: float
    end: float


@dataclasses.dataclass
class Narrative:
    """A validated Localized Narratives record and where it came from.

    ``points`` concatenates the points of every trace segment as an (N, 3) float array of
    (x, y, t): phrase windows take points from all segments, so the split into segments (mouse
    lifted) carries no information for curation beyond ``num_segments``.
    """

    dataset_id: str
    image_id: str
    annotator_id: Union[int, str]
    caption: str
    timed_caption: List[Utterance]
    points: np.ndarray
    num_segments: int
    voice_recording: str = ""
    source: str = ""  # file the record was read from
    line: int = 0  # 1-based line number in ``source``
    input_index: int = 0  # position of ``source`` among the inputs of a run

    @property
    def narrative_id(self) -> str:
        """A stable, human-readable id: ``<file name>:<line>`` (LocNar records have no id)."""
        return f"{os.path.basename(self.source)}:{self.line}"


class NarrativeFormatError(ValueError):
    """A record that cannot be used. ``reason`` is a short key for counting skips."""

    def __init__(self, reason: str, detail: str = "", source: str = "", line: int = 0):
        self.reason = reason
        self.detail = detail
        self.source = source
        self.line = line
        where = f"{source}:{line}: " if source else ""
        super().__init__(f"{where}{reason}" + (f" ({detail})" if detail else ""))

    def __reduce__(self):  # rebuild from the fields (errors travel back from worker processes)
        return NarrativeFormatError, (self.reason, self.detail, self.source, self.line)

    def located(self, source: str, line: int) -> "NarrativeFormatError":
        """The same error, naming the file and line."""
        return NarrativeFormatError(self.reason, self.detail, source, line)


class NarrativeInputError(ValueError):
    """A whole input file that cannot be read (truncated or corrupt gzip data): one line, naming it."""


def _finite(value: Any) -> bool:
    kind = type(value)  # exact types: JSON gives int and float, and a bool is no time
    return kind is int or (kind is float and math.isfinite(value))


def _parse_timed_caption(value: Any) -> List[Utterance]:
    if not isinstance(value, list):
        raise NarrativeFormatError("bad_timed_caption", f"expected a list, got {type(value).__name__}")
    if not value:
        raise NarrativeFormatError("no_timed_caption", "timed_caption is empty")
    out = []
    for i, u in enumerate(value):
        if not isinstance(u, dict):
            raise NarrativeFormatError("bad_timed_caption", f"utterance {i} is not an object")
        text, start, end = u.get("utterance"), u.get("start_time"), u.get("end_time")
        if not isinstance(text, str):
            raise NarrativeFormatError("bad_timed_caption", f"utterance {i} has no text")
        if not (_finite(start) and _finite(end)):
            raise NarrativeFormatError("bad_timed_caption", f"utterance {i} has no finite start/end time")
        if end < start:
            raise NarrativeFormatError("bad_timed_caption", f"utterance {i} ends before it starts")
        out.append(Utterance(text, float(start), float(end)))
    return out


_XYT = operator.itemgetter("x", "y", "t")


def _parse_traces(value: Any) -> Tuple[np.ndarray, int]:
    """All points of all segments as one (N, 3) array; numpy does the per-point work (speed).

    Fast path: one array from all segments at once; when that fails, the segments are checked one
    by one to name the bad one (same result, same errors).
    """
    if not isinstance(value, list):
        raise NarrativeFormatError("bad_traces", f"expected a list of segments, got {type(value).__name__}")
    if all(type(segment) is list for segment in value):
        try:
            arr = np.array(list(map(_XYT, itertools.chain.from_iterable(value))))
        except (TypeError, KeyError, IndexError, ValueError):
            arr = None
        if arr is not None and arr.dtype.kind in "fiu" and arr.ndim == 2 and len(arr):
            return _finite_points(arr.astype(np.float64)), len(value)
    return _parse_segments(value)


def _parse_segments(value: List[Any]) -> Tuple[np.ndarray, int]:
    """The segment-by-segment path of :func:`_parse_traces`: names the segment that is wrong."""
    arrays = []
    for i, segment in enumerate(value):
        if not isinstance(segment, list):
            raise NarrativeFormatError("bad_traces", f"segment {i} is not a list")
        if not segment:
            continue
        try:
            arr = np.array(list(map(_XYT, segment)))
        except (TypeError, KeyError, IndexError, ValueError):
            raise NarrativeFormatError("bad_traces", f"segment {i} has a point that is not an {{x, y, t}} object") \
                from None
        # strings give a text array, None an object array, nested values another shape
        if arr.dtype.kind not in "fiu" or arr.ndim != 2:
            raise NarrativeFormatError("bad_traces", f"segment {i} has a non-numeric x, y or t")
        arrays.append(arr)
    if not arrays:
        raise NarrativeFormatError("no_traces", "the traces hold no point")
    return _finite_points(np.concatenate(arrays).astype(np.float64)), len(value)


def _finite_points(points: np.ndarray) -> np.ndarray:
    if not np.isfinite(points).all():
        raise NarrativeFormatError("bad_traces", "a point has a non-finite x, y or t")
    return points


def parse_narrative(obj: Any, *, source: str = "", line: int = 0, input_index: int = 0) -> Narrative:
    """Validate one decoded record and return it as a :class:`Narrative`.

    Raises :class:`NarrativeFormatError` (with file and line when given) for anything unusable:
    a missing field (``missing_<field>``), a field of the wrong shape (``bad_<field>``), an empty
    caption, timed caption or trace.
    """
    try:
        if not isinstance(obj, dict):
            raise NarrativeFormatError("not_an_object", f"got {type(obj).__name__}")
        for field in ("image_id", "caption", "timed_caption", "traces"):
            if field not in obj or obj[field] is None:
                raise NarrativeFormatError(f"missing_{field}")
        image_id = obj["image_id"]
        if isinstance(image_id, bool) or not isinstance(image_id, (str, int)) or str(image_id) == "":
            raise NarrativeFormatError("bad_image_id", repr(image_id))
        caption = obj["caption"]
        if not isinstance(caption, str):
            raise NarrativeFormatError("bad_caption", f"expected a string, got {type(caption).__name__}")
        if not caption.strip():
            raise NarrativeFormatError("empty_caption")
        annotator_id = obj.get("annotator_id", "")
        if isinstance(annotator_id, bool) or not isinstance(annotator_id, (str, int)):
            raise NarrativeFormatError("bad_annotator_id", repr(annotator_id))
        timed = _parse_timed_caption(obj["timed_caption"])
        points, num_segments = _parse_traces(obj["traces"])
        return Narrative(
            dataset_id=str(obj.get("dataset_id", "")),
            image_id=str(image_id),
            annotator_id=annotator_id,
            caption=caption,
            timed_caption=timed,
            points=points,
            num_segments=num_segments,
            voice_recording=str(obj.get("voice_recording", "") or ""),
            source=str(source),
            line=line,
            input_index=input_index,
        )
    except NarrativeFormatError as e:
        raise e.located(str(source), line) if source else e


def parse_narrative_line(raw: Union[bytes, str], *, source: str = "", line: int = 0,
                         input_index: int = 0) -> Narrative:
    """Decode and validate one JSON line (bytes are decoded as UTF-8)."""
    try:
        obj = orjson.loads(raw)  # fast; NaN and bad UTF-8 take json's path below
        if isinstance(obj, dict) and (type(obj.get("image_id")) is float or type(obj.get("annotator_id")) is float):
            obj = None  # orjson reads integers beyond 64 bits as floats; json keeps them exact
    except orjson.JSONDecodeError:
        obj = None
    if obj is None:
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as e:
            raise NarrativeFormatError("invalid_utf8", str(e), str(source), line) from None
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise NarrativeFormatError("invalid_json", str(e), str(source), line) from None
    return parse_narrative(obj, source=source, line=line, input_index=input_index)


GZIP_MAGIC = b"\x1f\x8b"


def is_gzip(path: str) -> bool:
    """Whether ``path`` holds gzip data, by its first two bytes (not by its name)."""
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def _open_binary(path: str) -> IO[bytes]:
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")


def _gzip_error(path: str, line: int, error: BaseException) -> NarrativeInputError:
    return NarrativeInputError(
        f"{path}: truncated or corrupt gzip data after line {line} ({error}); download or compress the file again")


def _as_list(paths: PathList) -> List[str]:
    if isinstance(paths, (str, os.PathLike)):
        return [os.fspath(paths)]
    return [os.fspath(p) for p in paths]


def iter_narrative_lines(paths: PathList, stats: Optional[Dict[str, Dict[str, Any]]] = None
                         ) -> Iterator[Tuple[int, str, int, bytes]]:
    """Yield ``(input_index, path, line_number, raw_line)`` for every non-blank line of the inputs.

    Blank lines carry no record and are passed over silently; line numbers stay those of the file.
    gzip files (recognized by their first bytes, whatever their name) are decompressed on the fly; a
    truncated or corrupt one raises :class:`NarrativeInputError` naming it. ``stats``, when given,
    receives per path, once the file has been read to its end, ``{"sha256", "bytes", "lines"}``:
    the hash and size of its (decompressed) content, computed while reading, and its non-blank lines.
    """
    for input_index, path in enumerate(_as_list(paths)):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Localized Narratives file not found: {path}")
        digest, size, count, line_number = hashlib.sha256(), 0, 0, 0
        with _open_binary(path) as f:
            try:
                for line_number, raw in enumerate(f, start=1):
                    digest.update(raw)
                    size += len(raw)
                    if raw.strip():
                        count += 1
                        yield input_index, path, line_number, raw
            except (EOFError, gzip.BadGzipFile, zlib.error) as e:
                raise _gzip_error(path, line_number, e) from None
        if stats is not None:
            stats[path] = {"sha256": digest.hexdigest(), "bytes": size, "lines": count}


def iter_narratives(paths: PathList, *, strict: bool = False,
                    skips: Optional[Counter] = None) -> Iterator[Narrative]:
    """Stream validated narratives from one or more JSONL files.

    Unusable lines are counted in ``skips`` (reason -> count) and skipped; with ``strict`` the first
    one raises :class:`NarrativeFormatError` naming its file and line.
    """
    for input_index, path, line_number, raw in iter_narrative_lines(paths):
        try:
            yield parse_narrative_line(raw, source=path, line=line_number, input_index=input_index)
        except NarrativeFormatError as e:
            if strict:
                raise
            if skips is not None:
                skips[e.reason] += 1


def count_lines(paths: PathList, block_size: int = 1 << 22) -> int:
    """Number of lines of the inputs (for progress bars); fast, it only counts newlines."""
    total = 0
    for path in _as_list(paths):
        with _open_binary(path) as f:
            last, lines = b"\n", 0
            try:
                while True:
                    block = f.read(block_size)
                    if not block:
                        break
                    lines += block.count(b"\n")
                    last = block[-1:]
            except (EOFError, gzip.BadGzipFile, zlib.error) as e:
                raise _gzip_error(path, lines, e) from None
            total += lines + (last != b"\n")
    return total
