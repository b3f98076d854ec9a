"""Open Images challenge mask strings <-> COCO RLE, and the RLE geometry the metric needs.

The challenge CSVs store a mask as ``base64(zlib(COCO compressed RLE counts))`` at the image's full
resolution (``ImageWidth`` x ``ImageHeight``). Keeping masks as RLE (never as dense arrays) is what
makes the metric fast and memory-light: pycocotools computes areas, extents and IoU directly on RLE.
"""
from __future__ import annotations

import base64
import binascii
import zlib
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_utils

__all__ = [
    "RLE",
    "encode_challenge_mask",
    "decode_challenge_mask",
    "decode_challenge_masks",
    "rle_totals",
    "rle_to_challenge_string",
    "encode_rle",
    "rle_areas",
    "rle_extents_normalized",
]

RLE = Dict[str, object]  # {"size": [height, width], "counts": bytes}, pycocotools' compressed RLE
_BATCH = 2000  # strings validated together: amortizes numpy calls, bounds the temporary arrays


def encode_rle(mask: np.ndarray) -> RLE:
    """Dense binary mask (H, W) -> compressed COCO RLE with ``bytes`` counts."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a mask must be 2-D (height, width), got shape {mask.shape}")
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8, copy=False)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"]}


def rle_to_challenge_string(rle: RLE) -> str:
    """Compressed COCO RLE -> the challenge CSV text (best zlib compression, as the TF tests write)."""
    counts = rle["counts"]
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    elif not isinstance(counts, bytes):
        raise ValueError("rle_to_challenge_string needs a compressed RLE (counts as bytes or str)")
    return base64.b64encode(zlib.compress(counts, zlib.Z_BEST_COMPRESSION)).decode("ascii")


def encode_challenge_mask(mask: np.ndarray) -> str:
    """Dense binary mask (H, W) -> ``base64(zlib(COCO RLE counts))``."""
    return rle_to_challenge_string(encode_rle(mask))


def decode_challenge_mask(text: str, width: int, height: int) -> RLE:
    """Challenge CSV mask text -> compressed COCO RLE of size (height, width).

    Raises ``ValueError`` (never a deep zlib/base64 error) when the text is not a valid encoding, or
    when its runs do not add up to ``width * height`` pixels (a mask of the wrong image size).
    """
    rles, errors = decode_challenge_masks([text], [width], [height])
    if errors[0]:
        raise ValueError(errors[0])
    return rles[0]


def decode_challenge_masks(texts: Sequence[str], widths: Sequence[int], heights: Sequence[int]
                           ) -> Tuple[List[Optional[RLE]], List[Optional[str]]]:
    """Batch version of :func:`decode_challenge_mask`: (RLEs, error messages), ``None`` where none.

    Validation runs once over all strings (vectorized), which is what makes reading a million-row
    predictions file affordable; pycocotools itself does not check that the runs of an RLE cover
    exactly ``width * height`` pixels, and its IoU can loop forever on one that does not.
    """
    rles: List[Optional[RLE]] = []
    errors: List[Optional[str]] = []
    counts_list: List[bytes] = []
    for text, w, h in zip(texts, widths, heights):
        try:
            counts = zlib.decompress(base64.b64decode(text, validate=False))
            err = None
        except (binascii.Error, zlib.error, ValueError) as e:
            counts, err = b"", f"not a base64(zlib(RLE)) challenge mask: {e}"
        counts_list.append(counts)
        errors.append(err)
        rles.append(None if err else {"size": [int(h), int(w)], "counts": counts})
    totals = np.concatenate([rle_totals(counts_list[i:i + _BATCH]) for i in range(0, len(counts_list), _BATCH)]
                            or [np.zeros(0, dtype=np.int64)])
    for i, (w, h) in enumerate(zip(widths, heights)):
        if errors[i]:
            continue
        if totals[i] < 0:
            errors[i], rles[i] = "corrupt RLE counts in challenge mask", None
        elif totals[i] != int(w) * int(h):
            errors[i], rles[i] = (f"mask RLE covers {totals[i]} pixels but ImageWidth x ImageHeight is "
                                  f"{int(w)} x {int(h)} = {int(w) * int(h)}"), None
    return rles, errors


def rle_totals(counts_list: Sequence[bytes]) -> np.ndarray:
    """Pixels covered by each COCO compressed RLE string (sum of its runs); -1 for a corrupt string.

    pycocotools' string format: each run is a little-endian sequence of 5-bit groups (bit 0x20 =
    "more groups follow", bit 0x10 of the last group = sign), offset by 48; from the fourth run on,
    the stored value is the difference to the run two places before. All strings are decoded together,
    and the sum uses the fact that a stored difference at run m counts once for every later run of
    the same parity. Corrupt = a byte outside the alphabet, a truncated last run, or an absurdly long
    run; totals that merely disagree with the image size are the caller's to judge.
    """
    k = len(counts_list)
    lens = np.fromiter(map(len, counts_list), dtype=np.int64, count=k)
    totals = np.zeros(k, dtype=np.int64)
    if k == 0 or lens.sum() == 0:
        return totals
    raw = np.frombuffer(b"".join(counts_list), dtype=np.uint8)
    string_starts = np.cumsum(lens) - lens
    nonempty = np.flatnonzero(lens > 0)
    string_ends = string_starts[nonempty] + lens[nonempty] - 1
    bad = np.zeros(k, dtype=bool)
    out_of_alphabet = (raw < 48) | (raw > 111)
    if out_of_alphabet.any():
        bad[np.searchsorted(string_starts, np.flatnonzero(out_of_alphabet), side="right") - 1] = True
    c = raw - np.uint8(48)
    term = (c & 0x20) == 0
    bad[nonempty[~term[string_ends]]] = True  # truncated last run
    term[string_ends] = True  # never let a run continue into the next string
    ends = np.flatnonzero(term)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    run_len = ends - starts + 1
    longest = int(run_len.max())
    if longest > 12:
        bad[np.searchsorted(string_starts, starts[run_len > 12], side="right") - 1] = True
    # 5-bit groups, least significant first; runs of j+1 bytes or more get their j-th group (rare past 2)
    vals = (c[starts] & 0x1F).astype(np.int64)
    sel = np.arange(ends.size)
    for j in range(1, min(longest, 12)):
        sel = sel[run_len[sel] > j]
        vals[sel] |= (c[starts[sel] + j] & 0x1F).astype(np.int64) << (5 * j)
    # bit 0x10 of the last group = negative: subtract 2^(5 * bytes), written as 16 << (5 * bytes - 4)
    vals -= (c[ends] & 0x10).astype(np.int64) << (5 * np.minimum(run_len, 12) - 4)
    # run m >= 1 of a string of R runs counts (R - m + 1) // 2 times (itself and every later run of its
    # parity: a stored difference); run 0 once. R - m = (index one past the string's last run) - index
    first_run = np.searchsorted(ends, string_starts[nonempty], side="left")
    past_last = np.searchsorted(ends, string_ends, side="right")
    weight = (np.repeat(past_last, past_last - first_run) - np.arange(ends.size) + 1) >> 1
    weight[first_run] = 1
    totals[nonempty] = np.add.reduceat(vals * weight, first_run)
    totals[bad] = -1
    return totals


def rle_areas(rles: Sequence[RLE]) -> np.ndarray:
    """Foreground pixels of each RLE. (pycocotools 2.0.11 ``area`` fails on lists of more than 255
    masks under numpy 2 -- "out of bounds for uint8" -- so it is called on slices.)"""
    rles = list(rles)
    if not rles:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.asarray(mask_utils.area(rles[i:i + 255]), dtype=np.int64).reshape(-1)
                           for i in range(0, len(rles), 255)])


def rle_extents_normalized(rles: Sequence[RLE]) -> np.ndarray:
    """Normalized extents ``[xmin, ymin, xmax, ymax]`` of RLE masks, as TF derives a predicted box.

    The first and one past the last non-zero column/row, divided by the width/height; an empty mask
    gives an all-zero box, which TF's "invalid box" rule (xmin < xmax and ymin < ymax) then drops.
    """
    if len(rles) == 0:
        return np.zeros((0, 4), dtype=np.float64)
    rles = list(rles)
    xywh = mask_utils.toBbox(rles).reshape(-1, 4)
    sizes = np.array([r["size"] for r in rles], dtype=np.float64)  # (h, w)
    h, w = sizes[:, 0], sizes[:, 1]
    return np.stack([xywh[:, 0] / w, xywh[:, 1] / h, (xywh[:, 0] + xywh[:, 2]) / w,
                     (xywh[:, 1] + xywh[:, 3]) / h], axis=1)


def rle_iou(dets: List[RLE], gts: List[RLE], crowd) -> np.ndarray:
    """(len(dets), len(gts)) mask IoU; with ``crowd`` the intersection over the *detection's* area.

    pycocotools' crowd flag divides by the area of the first argument, which is exactly the TF
    ``ioa(groundtruth, detection)`` used for group-of masks. ``crowd`` is one flag for all GT columns
    or one per GT column (IoU and IoA of one image's GT in one call, each string decoded once). Sizes
    must have been checked by the caller: pycocotools silently returns 0 for masks of different sizes.
    """
    if not dets or not gts:
        return np.zeros((len(dets), len(gts)), dtype=np.float64)
    flags = [int(crowd)] * len(gts) if np.ndim(crowd) == 0 else [int(c) for c in crowd]
    if len(flags) != len(gts):
        raise ValueError(f"rle_iou: {len(flags)} crowd flags for {len(gts)} GT masks")
    out = mask_utils.iou(dets, gts, flags)
    return np.asarray(out, dtype=np.float64).reshape(len(dets), len(gts))
