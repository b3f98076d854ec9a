"""Open Images challenge mask strings <-> COCO RLE, and the RLE geometry the metric needs.

The challenge CSVs store a mask as ``base64(zlib(COCO compressed RLE counts))`` at the image's full
resolution (``ImageWidth`` x ``ImageHeight``). Keeping masks as RLE (never as dense arrays) is what
makes the metric fast and memory-light: pycocotools computes areas, extents and IoU directly on RLE.
"""
from __future__ import annotations

import base64
import binascii
import zlib
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_utils

__all__ = [
    "RLE",
    "encode_challenge_mask",
    "decode_challenge_mask",
    "rle_to_challenge_string",
    "encode_rle",
    "rle_boxes_normalized",
]

RLE = Dict[str, object]  # {"size": [height, width], "counts": bytes}, pycocotools' compressed RLE


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
    try:
        counts = zlib.decompress(base64.b64decode(text, validate=False))
    except (binascii.Error, zlib.error, ValueError) as e:
        raise ValueError(f"not a base64(zlib(RLE)) challenge mask: {e}") from None
    rle = {"size": [int(height), int(width)], "counts": counts}
    try:
        # decoding the run lengths (not the pixels) validates the string against the size
        total = _rle_length(counts)
    except ValueError as e:
        raise ValueError(f"corrupt RLE counts in challenge mask: {e}") from None
    if total != int(width) * int(height):
        raise ValueError(f"mask RLE covers {total} pixels but ImageWidth x ImageHeight is "
                         f"{int(width)} x {int(height)} = {int(width) * int(height)}")
    return rle


def _rle_length(counts: bytes) -> int:
    """Sum of the run lengths of a COCO compressed RLE string, vectorized with numpy.

    pycocotools' string format: each run is a little-endian sequence of 5-bit groups (bit 0x20 =
    "more groups follow", bit 0x10 of the last group = sign), offset by 48; from the third run on,
    the stored value is the difference to the run two places before.
    """
    c = np.frombuffer(counts, dtype=np.uint8).astype(np.int64) - 48
    if c.size == 0:
        return 0
    if c.min() < 0 or c.max() > 63:
        raise ValueError("byte outside the RLE alphabet")
    more = (c & 0x20) != 0
    if more[-1]:
        raise ValueError("truncated run length")
    ends = np.flatnonzero(~more)
    starts = np.concatenate([[0], ends[:-1] + 1])
    lengths = ends - starts + 1
    if lengths.max() > 12:
        raise ValueError("run length too long")
    pos = np.arange(c.size) - np.repeat(starts, lengths)
    vals = np.add.reduceat((c & 0x1F) << (5 * pos), starts)
    negative = (c[ends] & 0x10) != 0
    vals[negative] -= np.left_shift(1, 5 * lengths[negative])
    runs = vals.copy()
    runs[1::2] = np.cumsum(vals[1::2])
    runs[2::2] = np.cumsum(vals[2::2])
    if runs.min() < 0:
        raise ValueError("negative run length")
    return int(runs.sum())


def rle_boxes_normalized(rles: Sequence[RLE]) -> Tuple[np.ndarray, np.ndarray]:
    """Areas (pixels) and normalized extents ``[xmin, ymin, xmax, ymax]`` of RLE masks.

    The extent is the one the TF challenge code derives from a predicted mask: the first and one
    past the last non-zero column/row, divided by the width/height. An empty mask has area 0.
    """
    if len(rles) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 4), dtype=np.float64)
    rles = list(rles)
    areas = mask_utils.area(rles).astype(np.int64)
    xywh = mask_utils.toBbox(rles)
    sizes = np.array([r["size"] for r in rles], dtype=np.float64)  # (h, w)
    h, w = sizes[:, 0], sizes[:, 1]
    boxes = np.stack([xywh[:, 0] / w, xywh[:, 1] / h, (xywh[:, 0] + xywh[:, 2]) / w,
                      (xywh[:, 1] + xywh[:, 3]) / h], axis=1)
    return areas, boxes


def rle_iou(dets: List[RLE], gts: List[RLE], crowd: bool) -> np.ndarray:
    """(len(dets), len(gts)) mask IoU; with ``crowd`` the intersection over the *detection's* area.

    pycocotools' crowd flag divides by the area of the first argument, which is exactly the TF
    ``ioa(groundtruth, detection)`` used for group-of masks. Sizes must have been checked by the
    caller: pycocotools silently returns 0 for masks of different sizes.
    """
    if not dets or not gts:
        return np.zeros((len(dets), len(gts)), dtype=np.float64)
    out = mask_utils.iou(dets, gts, [int(crowd)] * len(gts))
    return np.asarray(out, dtype=np.float64).reshape(len(dets), len(gts))
