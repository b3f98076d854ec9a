"""Draw ALP boxes and their phrases on an image (like Fig. 2 of Desai et al.), with detectron2's Visualizer."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["draw_alps"]


def draw_alps(image: np.ndarray, annotations: Sequence[Mapping[str, Any]], scale: float = 1.0) -> np.ndarray:
    """Return an RGB uint8 copy of ``image`` (H, W, 3 RGB) with every ALP's box and phrase drawn.

    ``annotations`` are ALPS.json annotations (``bbox`` = [x, y, w, h] pixels, ``phrase``). Each
    distinct phrase gets its own colour from detectron2's colormap, so repeated phrases match.
    """
    from detectron2.utils.colormap import colormap
    from detectron2.utils.visualizer import Visualizer

    palette = colormap(rgb=True, maximum=1)
    colors = {}
    vis = Visualizer(image, metadata=None, scale=scale)
    for ann in annotations:
        x, y, w, h = (float(v) for v in ann["bbox"])
        color = colors.setdefault(ann["phrase"], tuple(palette[len(colors) % len(palette)]))
        vis.draw_box((x, y, x + w, y + h), edge_color=color, line_style="-", alpha=1.0)
        vis.draw_text(ann["phrase"], (x + 2, y + 2), color=color, horizontal_alignment="left")
    return vis.get_output().get_image()
