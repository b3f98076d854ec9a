"""The box of the trace points spoken over a phrase's time window."""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

import numpy as np

__all__ = ["BoxResult", "trace_box"]


@dataclasses.dataclass(frozen=True)
class BoxResult:
    """A box in XYXY pixels, or ``None`` with the reason it was dropped."""

    box: Optional[Tuple[float, float, float, float]]
    reason: str
    num_points: int
    clipped: bool = False
    widened: bool = False  # a line gesture widened to a box (see trace_box)


def _widen(lo: float, hi: float, extent: float, size: float) -> Tuple[float, float]:
    """``[lo, hi]`` grown about its centre to ``extent`` (at most ``size``), kept inside ``[0, size]``."""
    extent = min(extent, size)
    a = (lo + hi) / 2.0 - extent / 2.0
    a = min(max(a, 0.0), size - extent)
    return a, a + extent


def trace_box(points: np.ndarray, t1: float, t2: float, temporal_padding: float, width: float,
              height: float, min_box_size: float = 1.0, min_line_length: Optional[float] = None,
              line_width_ratio: float = 0.0) -> BoxResult:
    """Box (XYXY pixels) of the trace points with ``t1 - tp < t < t2 + tp``.

    ``points`` is (N, 3) of normalized (x, y, t). Drop reasons: ``no_points_in_window``,
    ``too_few_points`` (one point), ``outside_image`` (no point of the window on the image),
    ``zero_area`` and ``too_small`` (a side under ``min_box_size`` pixels). A *line gesture* -- one
    side under ``min_box_size``, the other at least ``min_line_length`` pixels (a sweep along a row
    of people, a stroke down a pole) -- is widened about its centre line to ``line_width_ratio``
    times its long side (at least ``min_box_size``) inside the image instead of being dropped
    (``widened=True``). With the defaults (no ``min_line_length``) line gestures are dropped.
    """
    t = points[:, 2]
    sel = points[(t > t1 - temporal_padding) & (t < t2 + temporal_padding)]
    n = len(sel)
    if n == 0:
        return BoxResult(None, "no_points_in_window", 0)
    if n < 2:
        return BoxResult(None, "too_few_points", n)
    lo, hi = sel[:, :2].min(axis=0).tolist(), sel[:, :2].max(axis=0).tolist()
    clipped = lo[0] < 0.0 or lo[1] < 0.0 or hi[0] > 1.0 or hi[1] > 1.0
    if clipped:
        x, y = sel[:, 0], sel[:, 1]
        if not ((x >= 0.0) & (x <= 1.0) & (y >= 0.0) & (y <= 1.0)).any():
            return BoxResult(None, "outside_image", n)
    # the extent of the clipped points is the clipped extent (clipping is monotonic)
    x1, y1 = min(max(lo[0], 0.0), 1.0) * width, min(max(lo[1], 0.0), 1.0) * height
    x2, y2 = min(max(hi[0], 0.0), 1.0) * width, min(max(hi[1], 0.0), 1.0) * height
    w, h = x2 - x1, y2 - y1
    if w >= min_box_size and h >= min_box_size and w > 0.0 and h > 0.0:
        return BoxResult((x1, y1, x2, y2), "", n, clipped)
    long_side = max(w, h)
    if min_line_length is not None and line_width_ratio > 0.0 and long_side >= max(min_line_length, min_box_size):
        extent = max(line_width_ratio * long_side, min_box_size)
        if w < min_box_size or w <= 0.0:
            x1, x2 = _widen(x1, x2, extent, width)
        if h < min_box_size or h <= 0.0:
            y1, y2 = _widen(y1, y2, extent, height)
        return BoxResult((x1, y1, x2, y2), "", n, clipped, widened=True)
    return BoxResult(None, "zero_area" if w <= 0.0 or h <= 0.0 else "too_small", n, clipped)
