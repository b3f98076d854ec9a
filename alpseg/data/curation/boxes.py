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

