"""Box quantization: snap the edges of ALP boxes outward to a scale-invariant grid.

ALP boxes come from mouse traces and often fall short of the object (paper section 3.2). Snapping
their edges *outward* to an imaginary grid makes it likelier that they enclose it. The grid has
square cells of ``Q * L / 256`` pixels, ``L`` being the shorter image side, so the same ``Q`` means the
same fraction of the image at any resolution; ``Q`` is drawn per instance from
``INPUT.ALP.BOX_QUANTIZATION`` (paper: {none, 8, 16, 32}; 0 stands for none). ``x1, y1`` are floored
and ``x2, y2`` ceiled to grid lines (the grid starts at the image origin), then the box is clipped to
the image. Only ALP instances are quantized; the caller selects them.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

__all__ = ["quantize_boxes", "sample_quantization"]

# Coordinates within this fraction of a cell from a grid line count as on it, so that float noise
# (e.g. 63.99999 for 64 after a resize) does not push an edge a whole cell outward.
_ON_LINE_TOLERANCE = 1e-6


def sample_quantization(num: int, choices: Sequence[int], rng: np.random.Generator | None = None) -> np.ndarray:
    """``num`` values of Q drawn uniformly from ``choices`` (np.random's global state if no ``rng``)."""
    if num and not len(choices):
        raise ValueError("INPUT.ALP.BOX_QUANTIZATION is empty; use [0] to switch quantization off")
    choices = np.asarray(choices, dtype=np.float64)
    if (choices < 0).any():
        raise ValueError(f"box quantization values must be >= 0, got {choices.tolist()}")
    idx = (rng.integers(len(choices), size=num) if rng is not None
           else np.random.randint(len(choices), size=num)) if num else np.zeros(0, dtype=np.int64)
    return choices[idx]


def quantize_boxes(boxes: np.ndarray, q: np.ndarray, short_side: float, image_size: Tuple[int, int]) -> np.ndarray:
    """Snap XYXY ``boxes`` (N, 4) outward to grids of cell ``q * short_side / 256``; q == 0 keeps a box.

    ``image_size`` is (height, width) of the image the boxes live in; results are clipped to it.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    q = np.asarray(q, dtype=np.float64).reshape(-1)
    if len(q) != len(boxes):
        raise ValueError(f"{len(boxes)} boxes but {len(q)} quantization values")
    if short_side <= 0:
        raise ValueError(f"short_side must be positive, got {short_side}")
    out = boxes.copy()
    on = q > 0
    if on.any():
        cell = (q[on] * short_side / 256.0)[:, None]
        b = boxes[on] / cell
        lo = np.floor(b[:, :2] + _ON_LINE_TOLERANCE)
        hi = np.ceil(b[:, 2:] - _ON_LINE_TOLERANCE)
        out[on] = np.concatenate([lo, hi], axis=1) * cell
    h, w = image_size
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, w)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, h)
    return out
