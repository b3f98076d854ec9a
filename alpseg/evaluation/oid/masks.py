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
    "rle_has_extent",
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
    n = len(texts)
    errors: List[Optional[str]] = [None] * n
    counts_list: List[bytes] = []
    append = counts_list.append
    failed = []
    for i, text in enumerate(texts):
        try:  # = base64.b64decode(text, validate=False), without its per-call type checks
            append(zlib.decompress(binascii.a2b_base64(text)))
        except (binascii.Error, zlib.error, ValueError) as e:
            append(b"")
            errors[i] = f"not a base64(zlib(RLE)) challenge mask: {e}"
            failed.append(i)
    widths = [int(w) for w in widths]
    heights = [int(h) for h in heights]
    totals = np.concatenate([rle_totals(counts_list[i:i + _BATCH]) for i in range(0, n, _BATCH)]
                            or [np.zeros(0, dtype=np.int64)])
    rles: List[Optional[RLE]] = [{"size": [h, w], "counts": c} for c, w, h in zip(counts_list, widths, heights)]
    expected = np.asarray(widths, dtype=np.int64) * np.asarray(heights, dtype=np.int64)
    for i in np.flatnonzero(totals != expected).tolist():
        w, h = widths[i], heights[i]
        rles[i] = None
        if errors[i]:
            continue
        if totals[i] < 0:
            errors[i] = "corrupt RLE counts in challenge mask"
        else:
            errors[i] = f"mask RLE covers {totals[i]} pixels but ImageWidth x ImageHeight is {w} x {h} = {w * h}"
    for i in failed:
        rles[i] = None
    return rles, errors


def rle_totals(counts_list: Sequence[bytes]) -> np.ndarray:
    """Pixels covered by each COCO compressed RLE string (sum of its runs); -1 for a corrupt string.

    pycocotools' string format: each run is a little-endian sequence of 5-bit groups (bit 0x20 =
    "more groups follow", bit 0x10 of the last group = sign), offset by 48; from the fourth run on,
    the stored value is the difference to the run two places before. Corrupt = a byte outside the
    alphabet, a truncated last run, or a run of more than 7 groups (pycocotools keeps 32-bit runs);
    totals that merely disagree with the image size are the caller's to judge.

    All strings are decoded together, byte by byte, without materializing their runs: byte b of run m
    holds the signed value ``v_b = group_b * 32^pos_b`` (the last group sign-extended), so that run
    m's stored value is the sum of its bytes' values; run m >= 1 of a string of R runs counts
    ``(R + 1 - m) // 2`` times in the total (itself and each later run of its parity: a stored
    difference), run 0 once. With ``p_m = (R + 1 - m) mod 2`` that weight is ``(R + 1 - m - p_m) / 2``,
    so the total needs only the per-string sums of v, m * v and v over odd m.
    """
    k = len(counts_list)
    lens = np.fromiter(map(len, counts_list), dtype=np.int64, count=k)
    totals = np.zeros(k, dtype=np.int64)
    if k == 0 or lens.sum() == 0:
        return totals
    raw = np.frombuffer(b"".join(counts_list), dtype=np.uint8)
    string_starts = np.cumsum(lens) - lens
    nonempty = np.flatnonzero(lens > 0)
    first_byte = string_starts[nonempty]
    last_byte = first_byte + lens[nonempty] - 1
    bad = np.zeros(k, dtype=bool)
    out_of_alphabet = (raw < 48) | (raw > 111)
    if out_of_alphabet.any():
        bad[np.searchsorted(string_starts, np.flatnonzero(out_of_alphabet), side="right") - 1] = True
    c = raw - np.uint8(48)
    term = (c & 0x20) == 0
    bad[nonempty[~term[last_byte]]] = True  # truncated last run
    term[last_byte] = True  # never let a run continue into the next string
    # pos: groups before this byte in its run (its 5-bit shift); a run never crosses a string end
    pos = np.zeros(raw.size, dtype=np.uint8)
    level = np.zeros(raw.size, dtype=bool)
    level[1:] = ~term[:-1]
    j = 0
    while level.any():
        j += 1
        if j == 7:  # an 8th group: more than 35 bits, no pycocotools run
            bad[np.searchsorted(string_starts, np.flatnonzero(level), side="right") - 1] = True
            break
        pos += level
        nxt = np.zeros(raw.size, dtype=bool)
        nxt[1:] = level[:-1] & ~term[:-1]
        level = nxt
    group = (c & 0x1F).astype(np.int64)
    group -= ((c & 0x10) & (term.view(np.uint8) << 4)).astype(np.int64) << 1  # last group: sign-extended
    v = group << (np.uint8(5) * pos).astype(np.int64)
    m = np.cumsum(term) - term  # global run index of each byte
    ends = np.flatnonzero(term)
    first_run = np.searchsorted(ends, first_byte, side="left")  # global index of each string's run 0
    runs = np.searchsorted(ends, last_byte, side="right") - first_run
    s_v = np.add.reduceat(v, first_byte)
    s_mv = np.add.reduceat(m * v, first_byte) - first_run * s_v  # local run index (int64 wraps consistently)
    s_odd = np.add.reduceat((m & 1) * v, first_byte)
    s_odd = np.where(first_run & 1, s_v - s_odd, s_odd)  # odd local index
    cv = np.cumsum(v)
    val0 = cv[ends[first_run]] - cv[first_byte] + v[first_byte]
    p_sum = np.where((runs + 1) & 1, s_v - s_odd, s_odd)  # sum of v over runs with (R + 1 - m) odd
    totals[nonempty] = ((runs + 1) * s_v - s_mv - p_sum) // 2 - val0 * (((runs + 1) >> 1) - 1)
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


_ALPHABET = bytes(range(48, 112))  # the bytes of pycocotools' RLE strings
_RUN_ENDS = bytes(range(48, 80))  # the bytes that end a run (bit 0x20 of byte - 48 clear)


def rle_has_extent(rles: Sequence[RLE]) -> np.ndarray:
    """Whether each mask's extent (:func:`rle_extents_normalized`) is a valid box (xmin < xmax and
    ymin < ymax), mostly without decoding: pycocotools' box is empty exactly when the string holds fewer
    than two runs, and a string of alphabet bytes has as many runs as run-ending bytes. Strings that
    are not of that form, or images of zero width or height, take pycocotools' own answer.
    """
    out = np.zeros(len(rles), dtype=bool)
    slow = []
    for i, rle in enumerate(rles):
        counts = rle["counts"]
        if isinstance(counts, str):
            counts = counts.encode()  # what pycocotools does with a str
        h, w = rle["size"]
        if (isinstance(counts, bytes) and counts and 48 <= counts[-1] < 80 and h > 0 and w > 0
                and not counts.translate(None, _ALPHABET)):
            out[i] = len(counts) - len(counts.translate(None, _RUN_ENDS)) >= 2
        else:
            slow.append(i)
    if slow:
        with np.errstate(divide="ignore", invalid="ignore"):  # a zero width or height: NaN, not a box
            boxes = rle_extents_normalized([rles[i] for i in slow])
        out[slow] = (boxes[:, 0] < boxes[:, 2]) & (boxes[:, 1] < boxes[:, 3])
    return out


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
