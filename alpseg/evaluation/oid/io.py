"""Open Images challenge CSV files: ground-truth rows, class lists, and predictions.

Formats (section 9 of the spec; coordinates normalized to [0, 1], CSVs with a header unless noted):

* GT boxes ``ImageID,LabelName,XMin,XMax,YMin,YMax,IsGroupOf`` (extra columns are ignored);
* GT masks ``ImageID,LabelName,ImageWidth,ImageHeight,XMin,YMin,XMax,YMax,IsGroupOf,Mask``;
* image labels ``ImageID,LabelName,Confidence``;
* predictions ``ImageID,ImageWidth,ImageHeight,LabelName,Score,Mask``;
* class descriptions ``MID,DisplayName`` (no header); base-class files: one MID per line.

Ground truth is small (tens of thousands of rows) and read whole. Predictions can be a million rows
of mask strings, so :class:`ChallengePredictionsCSV` only indexes byte ranges per image and parses an
image's rows when it is asked for them (in the worker process that evaluates that image).
"""
from __future__ import annotations

import csv
import io
import logging
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from alpseg.utils.io import atomic_open, atomic_write

from .masks import RLE, decode_challenge_masks, rle_to_challenge_string

__all__ = [
    "BoxRow",
    "MaskRow",
    "LabelRow",
    "ChallengeGroundTruth",
    "ImagePredictions",
    "ChallengePredictionsCSV",
    "read_ground_truth_csvs",
    "read_class_descriptions",
    "read_csv_records",
    "mid_from_mask_path",
    "clean_header",
    "read_class_list",
    "write_ground_truth_csvs",
    "write_predictions_csv",
]

logger = logging.getLogger(__name__)

BOX_COLUMNS = ("ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax", "IsGroupOf")
MASK_COLUMNS = ("ImageID", "LabelName", "ImageWidth", "ImageHeight", "XMin", "YMin", "XMax", "YMax",
                "IsGroupOf", "Mask")
LABEL_COLUMNS = ("ImageID", "LabelName", "Confidence")
PREDICTION_COLUMNS = ("ImageID", "ImageWidth", "ImageHeight", "LabelName", "Score", "Mask")


class BoxRow(NamedTuple):
    image_id: str
    label: str
    xmin: float
    xmax: float
    ymin: float
    ymax: float
    is_group_of: int


class MaskRow(NamedTuple):
    image_id: str
    label: str
    width: int
    height: int
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    is_group_of: int
    mask: str  # the challenge encoding; "" = no mask


class LabelRow(NamedTuple):
    image_id: str
    label: str
    confidence: float


@dataclass
class ChallengeGroundTruth:
    """The three challenge GT files as rows (before the box/mask join), plus read-time skip counts."""

    boxes: List[BoxRow] = field(default_factory=list)
    masks: List[MaskRow] = field(default_factory=list)
    labels: List[LabelRow] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)


@dataclass
class ImagePredictions:
    """Predictions of one image: MIDs, scores and full-resolution RLE masks, in the model's order."""

    labels: List[str]
    scores: np.ndarray
    masks: List[RLE]
    skipped: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        if not (len(self.labels) == len(self.scores) == len(self.masks)):
            raise ValueError(f"ImagePredictions: {len(self.labels)} labels, {len(self.scores)} scores, "
                             f"{len(self.masks)} masks; they must be equally many")

    def __len__(self) -> int:
        return len(self.labels)


# ----------------------------------------------------------------------------------------------------
# small helpers


def clean_header(header: Sequence[str]) -> List[str]:
    """Column names with surrounding space and a UTF-8 byte-order mark removed (the one header rule)."""
    return [h.strip().lstrip("\ufeff").strip() for h in header]


def _header_index(header: Sequence[str], required: Sequence[str], path: str) -> List[int]:
    header = clean_header(header)
    missing = [c for c in required if c not in header]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; header is {header}, expected at least "
                         f"{list(required)}")
    return [header.index(c) for c in required]


def _read_rows(path: str, required: Sequence[str]) -> Iterator[Tuple[int, List[str]]]:
    """Yield (line number, the required fields in order) of a CSV with a header."""
    with open(path, "r", encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise ValueError(f"{path}: empty file (a header {','.join(required)} is expected)") from None
        idx = _header_index(header, required, path)
        width = max(idx) + 1
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) < width:
                yield lineno, []
                continue
            yield lineno, [row[i] for i in idx]


def _header(path: str) -> List[str]:
    with open(path, "r", encoding="utf-8", newline="") as f:
        return clean_header(next(csv.reader(f), []))


def mid_from_mask_path(mask_path: str, image_id: str) -> str:
    """The MID encoded in an Open Images v6 mask file name ``<ImageID>_<MID without slashes>_<BoxID>.png``.

    ``/m/0bwd_0j`` is written ``m0bwd_0j``: MIDs may contain ``_``, so the name is cut at the known
    ImageID and at the last ``_``. Raises ``ValueError`` if the name does not have that form.
    """
    stem = os.path.basename(mask_path)
    stem = stem[:-4] if stem.lower().endswith(".png") else stem
    if not stem.startswith(image_id + "_") or stem.count("_") < 2:
        raise ValueError(f"mask file name {mask_path!r} is not <ImageID>_<MID>_<BoxID>.png for image {image_id}")
    encoded = stem[len(image_id) + 1:].rsplit("_", 1)[0]
    if len(encoded) < 2:
        raise ValueError(f"mask file name {mask_path!r} has no MID")
    return f"/{encoded[0]}/{encoded[1:]}"


def read_csv_records(path: str, required: Sequence[str]) -> Iterator[Dict[str, str]]:
    """Rows of a CSV with a header as dicts (all columns), after checking the ``required`` columns.

    The header goes through :func:`clean_header` (a byte-order mark written by spreadsheet software
    would otherwise hide the first column); blank lines are skipped.
    """
    with open(path, "r", encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        try:
            header = clean_header(next(reader))
        except StopIteration:
            raise ValueError(f"{path}: empty file (a header {','.join(required)} is expected)") from None
        _header_index(header, required, path)
        for row in reader:
            if row:
                yield dict(zip(header, row))


def _int_flag(text: str) -> int:
    return int(float(text))


def _parse(path: str, required: Sequence[str], convert, skipped: Counter, kind: str, strict: bool):
    out = []
    for lineno, fields in _read_rows(path, required):
        try:
            if not fields:
                raise ValueError("too few columns")
            out.append(convert(fields))
        except ValueError as e:
            if strict:
                raise ValueError(f"{path}:{lineno}: malformed {kind} row: {e}") from None
            skipped[f"malformed_{kind}_rows"] += 1
    return out


def read_ground_truth_csvs(boxes: Optional[str], masks: Optional[str], labels: Optional[str],
                           strict: bool = False) -> ChallengeGroundTruth:
    """Read the challenge GT files. A malformed row is counted in ``skipped`` (or raises if strict).

    Any of the three may be ``None`` (e.g. masks-only ground truth); the metric then sees no rows of
    that kind, exactly as if the file were empty.
    """
    gt = ChallengeGroundTruth()

    def box(f):
        return BoxRow(f[0], f[1], float(f[2]), float(f[3]), float(f[4]), float(f[5]), _int_flag(f[6]))

    def msk(f):
        return MaskRow(f[0], f[1], int(float(f[2])), int(float(f[3])), float(f[4]), float(f[5]),
                       float(f[6]), float(f[7]), _int_flag(f[8]), f[9].strip())

    def lab(f):
        return LabelRow(f[0], f[1], float(f[2]))

    if boxes:
        gt.boxes = _parse(boxes, BOX_COLUMNS, box, gt.skipped, "box", strict)
    if masks:
        if "MaskPath" in _header(masks):
            # an export that kept the release's MaskPath: the MID it encodes is the truth (some exports
            # write other names, e.g. COCO's, into LabelName); a MID in LabelName must agree with it
            def msk_path(f):
                mid = mid_from_mask_path(f[10], f[0])
                if f[1].startswith("/") and f[1] != mid:
                    raise ValueError(f"LabelName {f[1]} but MaskPath {f[10]} encodes {mid}")
                return msk([f[0], mid] + f[2:10])

            gt.masks = _parse(masks, MASK_COLUMNS + ("MaskPath",), msk_path, gt.skipped, "mask", strict)
            logger.info("%s: class of each mask row read from its MaskPath (LabelName ignored)", masks)
        else:
            gt.masks = _parse(masks, MASK_COLUMNS, msk, gt.skipped, "mask", strict)
    if labels:
        gt.labels = _parse(labels, LABEL_COLUMNS, lab, gt.skipped, "label", strict)
    return gt


def read_class_descriptions(path: str) -> Dict[str, str]:
    """MID -> display name of a ``MID,DisplayName`` CSV, in file order.

    No header (a first line ``LabelName,DisplayName`` or ``MID,...`` is tolerated, with or without a
    byte-order mark). Display names may repeat (the 500-class challenge list has two "Mouse" and two
    "Bench"): MIDs are the keys. A repeated MID is an error.
    """
    out: Dict[str, str] = {}
    with open(path, "r", encoding="utf-8", newline="") as f:
        for lineno, row in enumerate(csv.reader(f), start=1):
            if not row:
                continue
            if len(row) < 2:
                raise ValueError(f"{path}:{lineno}: expected MID,DisplayName, got {row}")
            mid = row[0].strip().lstrip("\ufeff")
            if lineno == 1 and mid in ("LabelName", "MID"):
                continue
            if mid in out:
                raise ValueError(f"{path}:{lineno}: MID {mid} is listed twice (MIDs must be unique)")
            out[mid] = row[1].strip()
    if not out:
        raise ValueError(f"{path}: no classes")
    return out


def read_class_list(path: str) -> List[str]:
    """One MID (or class name) a line; blank lines and ``#`` comments are skipped."""
    with open(path, "r", encoding="utf-8") as f:
        items = [line.split("#", 1)[0].strip() for line in f]
    return [x for x in items if x]


def _fmt(x: float) -> str:
    return repr(float(x))


def write_ground_truth_csvs(gt: ChallengeGroundTruth, boxes: Optional[str], masks: Optional[str],
                            labels: Optional[str]) -> None:
    """Write rows in the challenge formats (atomically). Floats are written with ``repr`` so that
    the box/mask join on exact coordinates survives a round trip."""
    if boxes:
        _write_csv(boxes, BOX_COLUMNS, ([r.image_id, r.label, _fmt(r.xmin), _fmt(r.xmax), _fmt(r.ymin),
                                         _fmt(r.ymax), r.is_group_of] for r in gt.boxes))
    if masks:
        _write_csv(masks, MASK_COLUMNS, ([r.image_id, r.label, r.width, r.height, _fmt(r.xmin), _fmt(r.ymin),
                                          _fmt(r.xmax), _fmt(r.ymax), r.is_group_of, r.mask] for r in gt.masks))
    if labels:
        _write_csv(labels, LABEL_COLUMNS, ([r.image_id, r.label, int(r.confidence)
                                            if float(r.confidence).is_integer() else r.confidence]
                                           for r in gt.labels))


def _write_csv(path: str, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    atomic_write(path, buf.getvalue())


def write_predictions_csv(path: str, predictions: Mapping[str, ImagePredictions]) -> int:
    """Write the challenge predictions CSV (images in sorted order, rows in the given order).

    Streams to a temporary file (predictions of a whole dataset can be hundreds of MB) and renames it.
    Returns the number of rows written.
    """
    n = 0
    with atomic_open(path) as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(PREDICTION_COLUMNS)
        for image_id in sorted(predictions):
            p = predictions[image_id]
            for label, score, rle in zip(p.labels, p.scores, p.masks):
                h, w_ = rle["size"]
                w.writerow([image_id, int(w_), int(h), label, repr(float(score)), rle_to_challenge_string(rle)])
                n += 1
    return n


# ----------------------------------------------------------------------------------------------------
# predictions: indexed lazily, parsed per image


class ChallengePredictionsCSV(Mapping):
    """A read-only mapping ImageID -> :class:`ImagePredictions` backed by a challenge predictions CSV.

    Construction scans the file once and records, per image, the byte ranges of its rows (runs of
    consecutive lines); nothing else is kept in memory. ``self[image_id]`` reads and decodes only that
    image's rows, so worker processes can each parse their own images. Rows of an image need not be
    contiguous. A malformed row is counted in the returned ``ImagePredictions.skipped`` (or raises if
    ``strict``); ``pending_skips`` holds rows whose ImageID could not even be read. ``num_rows``: the
    non-blank rows after the header. Scores must be confidences in [0, 1]; other rows are counted
    under ``predictions_with_scores_outside_0_1`` (an error if ``strict``).
    """

    def __init__(self, path: str, strict: bool = False):
        self.path = path
        self.strict = strict
        self._runs: Dict[str, List[Tuple[int, int]]] = {}
        self.pending_skips: Counter = Counter()
        self._fh = None
        self._fh_pid = None
        with open(path, "rb") as f:
            header_line = f.readline()
            header = next(csv.reader([header_line.decode("utf-8")]), [])
            self._idx = _header_index(header, PREDICTION_COLUMNS, path)
            id_col = self._idx[0]
            offset = len(header_line)
            last_id, run_start = None, offset
            self.num_rows = 0  # non-blank rows after the header
            for line in f:
                n = len(line)
                if not line.strip():
                    offset += n
                    continue
                self.num_rows += 1
                parts = line.split(b",", id_col + 1)
                if len(parts) <= id_col:
                    self.pending_skips["malformed_prediction_rows"] += 1
                    image_id = None
                else:
                    image_id = parts[id_col].decode("utf-8").strip().strip("\"")
                if image_id != last_id:
                    if last_id is not None:
                        self._runs.setdefault(last_id, []).append((run_start, offset))
                    last_id, run_start = image_id, offset
                offset += n
            if last_id is not None:
                self._runs.setdefault(last_id, []).append((run_start, offset))
        self._runs.pop(None, None)  # rows without an ImageID were counted above

    def __len__(self) -> int:
        return len(self._runs)

    def __iter__(self) -> Iterator[str]:
        return iter(self._runs)

    def __contains__(self, key: object) -> bool:
        return key in self._runs

    def _handle(self):
        # one handle per process: a handle inherited through fork shares its offset with the parent
        if self._fh is None or self._fh_pid != os.getpid():
            self._fh = open(self.path, "rb")
            self._fh_pid = os.getpid()
        return self._fh

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_fh"], state["_fh_pid"] = None, None
        return state

    def __getitem__(self, image_id: str) -> ImagePredictions:
        runs = self._runs[image_id]
        fh = self._handle()
        chunks = []
        for start, end in runs:
            fh.seek(start)
            chunks.append(fh.read(end - start).decode("utf-8"))
        labels, scores, texts, widths, heights = [], [], [], [], []
        skipped: Counter = Counter()
        _, i_w, i_h, i_label, i_score, i_mask = self._idx
        need = max(self._idx)

        def bad_row(message: str) -> None:
            if self.strict:
                raise ValueError(f"{self.path}: malformed prediction row of image {image_id}: {message}")
            skipped["malformed_prediction_rows"] += 1

        text = "".join(chunks)
        if '"' in text or "\r" in text or "\0" in text:
            rows: Iterable[List[str]] = csv.reader(io.StringIO(text))
        else:  # no quoting, no CR, no NUL: csv.reader's rows are the lines split at commas (5x faster)
            rows = (line.split(",") for line in text.split("\n") if line)
        for row in rows:
            if not row:
                continue
            try:
                if len(row) <= need:
                    raise ValueError("too few columns")
                width, height = int(float(row[i_w])), int(float(row[i_h]))
                score = float(row[i_score])
                if not math.isfinite(score):
                    raise ValueError(f"score {row[i_score]!r} is not finite")
            except ValueError as e:
                bad_row(str(e))
                continue
            if not 0.0 <= score <= 1.0:
                # the challenge's scores are confidences; a logit or a percentage would rank fine but
                # signal a wrong export, so such rows are kept out and counted (an error if strict)
                if self.strict:
                    raise ValueError(f"{self.path}: prediction of image {image_id} has score {row[i_score]!r} "
                                     "outside [0, 1]")
                skipped["predictions_with_scores_outside_0_1"] += 1
                continue
            labels.append(row[i_label].strip())
            scores.append(score)
            texts.append(row[i_mask].strip())
            widths.append(width)
            heights.append(height)
        # an empty Mask field is an empty mask: the metric drops it (and counts it)
        filled = [i for i, t in enumerate(texts) if t]
        decoded, errors = decode_challenge_masks([texts[i] for i in filled], [widths[i] for i in filled],
                                                 [heights[i] for i in filled])
        rles: List[Optional[RLE]] = [{"size": [h, w], "counts": b""} for w, h in zip(widths, heights)]
        ok = [True] * len(texts)
        for i, rle, err in zip(filled, decoded, errors):
            if err:
                bad_row(err)
                ok[i] = False
            rles[i] = rle
        if not all(ok):
            labels = [x for x, good in zip(labels, ok) if good]
            scores = [x for x, good in zip(scores, ok) if good]
        masks = [r for r, good in zip(rles, ok) if good]
        return ImagePredictions(labels, np.asarray(scores, dtype=np.float64), masks, skipped)

