"""The one curation stream driver: records -> validated narratives -> spaCy -> ALPs.

:func:`curate_stream` is the only loop that validates records, feeds captions to spaCy and curates
the tagged docs; :func:`curate_narratives` (records in memory) and the chunks of
:class:`~alpseg.data.curation.job.CurationJob` (raw lines of files) both go through it.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from ..narratives import Narrative, NarrativeFormatError, parse_narrative, parse_narrative_line
from .alignment import WordTimer
from .boxes import trace_box
from .config import CurationConfig
from .images import load_image_info
from .phrases import extract_phrases
from .pipeline import head_lemmatizer, pipe_with_payloads
from .report import CurationReport

__all__ = ["curate_doc", "curate_stream", "curate_narratives", "accept_narrative", "alp_sort_key", "number_alps"]

Record = Union[bytes, str, Narrative, Mapping[str, Any]]

def curate_doc(narrative: Narrative, doc, image: Mapping[str, Any], config: CurationConfig,
               report: Optional[CurationReport] = None,
               lemmatize: Optional[Callable[[Any], str]] = None) -> List[Dict[str, Any]]:
    """ALPs of one narrative whose caption has been tagged into ``doc`` (ids not yet assigned).

    ``lemmatize`` is :func:`head_lemmatizer` of the pipeline that made ``doc``.
    """
    report = report if report is not None else CurationReport()
    report.counts["narratives_curated"] += 1
    report.curated_images.add(str(image["id"]))
    phrases, dropped = extract_phrases(doc, config, lemmatize, report.dropped_words)
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
                        image["width"], image["height"], config.min_box_size, config.min_line_length,
                        config.line_width_ratio)
        if res.box is None:
            report.dropped[res.reason] += 1
            continue
        x1, y1, x2, y2 = (round(v, 2) for v in res.box)
        report.counts["alps"] += 1
        report.counts["partially_aligned"] += timed < total
        report.counts["clipped"] += res.clipped
        report.counts["widened"] += res.widened
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
        return _accept(record, "<records>", position, 0, images, report)
    except NarrativeFormatError as e:
        if strict:
            raise
        report.skip(e.reason)
        return None


def _accept(record: Record, source: str, line: int, input_index: int, images: Mapping[str, Mapping[str, Any]],
            report: CurationReport) -> Tuple[Narrative, Mapping[str, Any]]:
    """A parsed, validated narrative and its image, or :class:`NarrativeFormatError`."""
    if isinstance(record, (bytes, str)):
        narrative = parse_narrative_line(record, source=source, line=line, input_index=input_index)
    elif isinstance(record, Narrative):
        narrative = record
    else:
        narrative = parse_narrative(record, source=source, line=line, input_index=input_index)
    image = images.get(narrative.image_id)
    if image is None:
        raise NarrativeFormatError("image_not_in_info", f"image id {narrative.image_id!r}",
                                   narrative.source, narrative.line)
    report.counts["narratives_read"] += 1
    return narrative, image


def curate_stream(items: Iterable[Tuple[Record, str, int, int]], images: Mapping[str, Mapping[str, Any]], nlp,
                  config: CurationConfig, report: CurationReport, *, strict: bool = False, n_process: int = 1,
                  batch_size: int = 64, lemmatize: Optional[Callable[[Any], str]] = None
                  ) -> Tuple[List[Dict[str, Any]], Optional[NarrativeFormatError]]:
    """Curate ``(record, source, line, input_index)`` items: ``(ALPs without ids, strict error or None)``.

    A record is a raw JSON line (bytes or str), a LocNar dict or a :class:`Narrative`. Unusable
    records are counted in ``report.skipped``; with ``strict`` the first one ends the input and is
    returned (not raised: spaCy's worker processes must see the input end first, see
    :func:`pipe_with_payloads`). ``lemmatize`` defaults to :func:`head_lemmatizer` of ``nlp``.
    """
    failure: List[NarrativeFormatError] = []

    def accepted() -> Iterator[Tuple[str, Tuple[Narrative, Mapping[str, Any]]]]:
        for record, source, line, input_index in items:
            report.counts["lines"] += 1
            try:
                narrative, image = _accept(record, source, line, input_index, images, report)
            except NarrativeFormatError as e:
                if strict:
                    failure.append(e)
                    return
                report.skip(e.reason)
                continue
            yield narrative.caption, (narrative, image)

    if lemmatize is None:
        lemmatize = head_lemmatizer(nlp)
    alps: List[Dict[str, Any]] = []
    for doc, (narrative, image) in pipe_with_payloads(nlp, accepted(), n_process, batch_size):
        alps += curate_doc(narrative, doc, image, config, report, lemmatize)
    return alps, (failure[0] if failure else None)


def curate_narratives(
    records: Iterable[Union[Narrative, Mapping[str, Any]]],
    image_info: Union[str, Mapping[str, Any], Sequence[Mapping[str, Any]]],
    nlp,
    temporal_padding: Optional[float] = None,
    *,
    config: Optional[CurationConfig] = None,
    n_process: int = 1,
    batch_size: int = 64,
    strict: bool = False,
) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
    """Curate ALPs from narratives in memory: returns ``(alps with ids, report dict)``.

    ``records`` are :class:`Narrative` objects or raw LocNar dicts (validated here); ``image_info``
    is a COCO-style dict / path, or the output of :func:`load_image_info`. Records that cannot be
    used are counted in the report (``strict`` raises instead). ``temporal_padding``, when given,
    overrides ``config.temporal_padding`` (default: the config's, 0.5 s). For files, resume and
    shards use :class:`alpseg.data.curation.job.CurationJob` (``tools/curate_alps.py``).
    """
    config = config or CurationConfig()
    if temporal_padding is not None:
        config = dataclasses.replace(config, temporal_padding=temporal_padding)
    if isinstance(image_info, Mapping) and "images" not in image_info:
        images = image_info  # already keyed by str(id)
    else:
        images = load_image_info(image_info)
    report = CurationReport()
    items = ((record, "<records>", position, 0) for position, record in enumerate(records, start=1))
    alps, failure = curate_stream(items, images, nlp, config, report, strict=strict, n_process=n_process,
                                  batch_size=batch_size)
    if failure is not None:
        raise failure
    alps.sort(key=alp_sort_key)
    number_alps(alps)
    return alps, report.to_dict(alps)
