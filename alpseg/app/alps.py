"""Review curated ALPs: the narration with each ALP's words highlighted, its mouse-trace points inside
the time window, the box curation made of them and the boxes quantization can turn it into.

Everything is read with the package's own readers (ALPS.json as ``tools/curate_alps.py`` writes it,
Localized Narratives with :func:`alpseg.data.narratives.iter_narratives`) and drawn with
:func:`alpseg.utils.alp_visualizer.draw_alps` plus detectron2's ``Visualizer`` for the trace points and
the quantized boxes. The trace window is the one curation used: ``t1 - tp < t < t2 + tp`` with ``tp``
read from the file's report (``settings.options.temporal_padding``).
"""
from __future__ import annotations

import html
import json
import os
from collections import Counter, defaultdict
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np

from alpseg.data.alp_curation import CurationConfig
from alpseg.data.box_quantization import quantize_boxes
from alpseg.data.narratives import Narrative, iter_narratives

__all__ = ["AlpBrowser", "phrase_colors", "ALP_TABLE_HEADERS"]

ALP_TABLE_HEADERS = ["phrase", "spoken", "time window (s)", "trace points", "box x, y, w, h"]


def phrase_colors(annotations: Sequence[Mapping[str, Any]]) -> Dict[str, Tuple[float, float, float]]:
    """RGB colours in [0, 1] per phrase, assigned exactly as ``draw_alps`` assigns them (first use order)."""
    from detectron2.utils.colormap import colormap

    palette = colormap(rgb=True, maximum=1)
    colors: Dict[str, Tuple[float, float, float]] = {}
    for ann in annotations:
        colors.setdefault(ann["phrase"], tuple(float(c) for c in palette[len(colors) % len(palette)]))
    return colors


def _hex(color: Sequence[float]) -> str:
    return "#" + "".join(f"{int(round(255 * c)):02x}" for c in color)


class AlpBrowser:
    """ALPS.json + images (+ the narratives it was curated from) for one-image-at-a-time review.

    Args:
        alps_json: ALPS.json written by ``tools/curate_alps.py``.
        image_root: folder the images' ``file_name`` are relative to.
        narratives: the Localized Narratives JSONL file(s) curated; without them traces and the
            narration are not shown (``has_narratives`` is False). Only narratives some ALP refers to
            are kept; unusable lines are counted in ``narrative_skips``.
        quantization: grid sizes ``Q`` whose quantized boxes are drawn (0 entries are ignored).
        progress: a progress bar over the narratives' lines (the real files have 500K of them).
    """

    def __init__(self, alps_json: str, image_root: str, narratives: Sequence[str] = (),
                 quantization: Sequence[int] = (8, 16, 32), progress: bool = False):
        if not os.path.isfile(alps_json):
            raise FileNotFoundError(f"{alps_json}: no such ALPS.json; write one with tools/curate_alps.py "
                                    f"(or run `make demo`)")
        if not os.path.isdir(image_root):
            raise FileNotFoundError(f"{image_root}: image folder of {alps_json} not found; pass --image-root")
        with open(alps_json, encoding="utf-8") as f:
            data = json.load(f)
        missing = [k for k in ("images", "annotations") if k not in data]
        if missing:
            raise ValueError(f"{alps_json}: not an ALPS.json (no {', '.join(missing)}); write it with "
                             f"tools/curate_alps.py")
        self.alps_json = alps_json
        self.image_root = image_root
        self.images: Dict[str, Dict[str, Any]] = {str(im["id"]): im for im in data["images"]}
        self.by_image: Dict[str, List[Dict[str, Any]]] = defaultdict(list)
        for ann in data["annotations"]:
            self.by_image[str(ann["image_id"])].append(ann)
        self.report: Dict[str, Any] = data.get("report") or {}
        options = (self.report.get("settings") or {}).get("options") or {}
        self.temporal_padding = float(options.get("temporal_padding", CurationConfig.temporal_padding))
        self.quantization = [int(q) for q in quantization if q]
        self.narratives: Dict[str, Narrative] = {}
        self.narrative_skips: Counter = Counter()
        if narratives:
            wanted = {a.get("narrative_id") for anns in self.by_image.values() for a in anns}
            from tqdm import tqdm

            stream = iter_narratives(list(narratives), skips=self.narrative_skips)
            for n in tqdm(stream, desc="[app] narratives", unit=" lines", disable=not progress):
                if n.narrative_id in wanted:
                    self.narratives[n.narrative_id] = n

    @property
    def has_narratives(self) -> bool:
        return bool(self.narratives)

    # -- selection -----------------------------------------------------------------------------
    def alps_of(self, image_id: str, phrase_filter: str = "") -> List[Dict[str, Any]]:
        """ALPs of one image whose phrase contains ``phrase_filter`` (case-insensitive), in file order."""
        needle = phrase_filter.strip().lower()
        return [a for a in self.by_image.get(str(image_id), []) if needle in a["phrase"].lower()]

    def image_ids(self, phrase_filter: str = "") -> List[str]:
        """Images with at least one ALP matching ``phrase_filter``, in ALPS.json image order."""
        return [i for i in self.images if self.alps_of(i, phrase_filter)]

    def phrases(self) -> List[Tuple[str, int]]:
        """(phrase, number of ALPs) from the most frequent down."""
        counts = Counter(a["phrase"] for anns in self.by_image.values() for a in anns)
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))

    # -- geometry ------------------------------------------------------------------------------
    def window_points(self, alp: Mapping[str, Any]) -> np.ndarray:
        """(N, 2) pixel coordinates of the trace points inside the ALP's padded time window."""
        narrative = self.narratives.get(alp.get("narrative_id"))
        if narrative is None or "time_window" not in alp:
            return np.zeros((0, 2))
        im = self.images[str(alp["image_id"])]
        t1, t2 = alp["time_window"]
        p = narrative.points
        sel = p[(p[:, 2] > t1 - self.temporal_padding) & (p[:, 2] < t2 + self.temporal_padding)]
        return np.stack([sel[:, 0] * im["width"], sel[:, 1] * im["height"]], axis=1)

    def quantized_boxes(self, alp: Mapping[str, Any]) -> Dict[int, List[float]]:
        """XYXY pixel box of the ALP after quantization with each ``Q`` of ``self.quantization``."""
        im = self.images[str(alp["image_id"])]
        x, y, w, h = (float(v) for v in alp["bbox"])
        boxes = np.array([[x, y, x + w, y + h]] * len(self.quantization))
        out = quantize_boxes(boxes, np.array(self.quantization, dtype=float), min(im["height"], im["width"]),
                             (im["height"], im["width"]))
        return {q: [float(v) for v in box] for q, box in zip(self.quantization, out)}

    # -- rendering -----------------------------------------------------------------------------
    def draw(self, image_id: str, phrase_filter: str = "", scale: float = 4.0,
             show_quantized: bool = True) -> np.ndarray:
        """RGB drawing of the image's (filtered) ALPs: box and phrase, trace points, quantized boxes."""
        from detectron2.data.detection_utils import read_image
        from detectron2.utils.visualizer import Visualizer

        from alpseg.utils.alp_visualizer import draw_alps

        im = self.images[str(image_id)]
        path = os.path.join(self.image_root, im["file_name"])
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: image {image_id} of {self.alps_json} not found; check --image-root")
        alps = self.alps_of(image_id, phrase_filter)
        colors = phrase_colors(alps)
        drawn = draw_alps(read_image(path, format="RGB"), alps, scale=scale)
        vis = Visualizer(drawn, metadata=None, scale=1.0)
        radius = max(1.0, scale)
        for alp in alps:
            color = colors[alp["phrase"]]
            for px, py in self.window_points(alp) * scale:
                vis.draw_circle((float(px), float(py)), color=color, radius=radius)
            if show_quantized:
                for box in self.quantized_boxes(alp).values():
                    vis.draw_box([v * scale for v in box], edge_color=color, line_style="--", alpha=0.6)
        return vis.get_output().get_image()

    def narration_html(self, image_id: str, phrase_filter: str = "") -> str:
        """Each narration of the image with the words of its (filtered) ALPs in ``<mark class="alp">``.

        A mark has the phrase's box colour, the normalized phrase in ``data-phrase`` and the time window
        in its title. Without the narratives file only the spoken ALP texts are listed.
        """
        alps = self.alps_of(image_id, phrase_filter)
        colors = phrase_colors(alps)
        by_narrative: Dict[str, List[Dict[str, Any]]] = defaultdict(list)
        for a in alps:
            by_narrative[a.get("narrative_id", "")].append(a)
        parts = []
        for nid, items in by_narrative.items():
            narrative = self.narratives.get(nid)
            if narrative is None:
                spans = ", ".join(self._mark(a, a.get("text", a["phrase"]), colors) for a in items)
                parts.append(f'<p class="alp-narration">[{html.escape(nid)}: narration not loaded] {spans}</p>')
                continue
            caption, pos, out = narrative.caption, 0, []
            for a in sorted(items, key=lambda a: a.get("char_start", 0)):
                start = int(a.get("char_start", -1))
                end = start + len(a.get("text", ""))
                if start < pos or caption[start:end].lower() != a.get("text", "").lower():
                    continue  # overlapping or not at its recorded place: left unmarked
                out += [html.escape(caption[pos:start]), self._mark(a, caption[start:end], colors)]
                pos = end
            out.append(html.escape(caption[pos:]))
            parts.append(f'<p class="alp-narration" title="{html.escape(nid)}">{"".join(out)}</p>')
        return "\n".join(parts) or '<p class="alp-narration">no ALP matches the filter</p>'

    def _mark(self, alp: Mapping[str, Any], text: str, colors) -> str:
        t1, t2 = alp.get("time_window", (float("nan"), float("nan")))
        color = _hex(colors[alp["phrase"]])
        return (f'<mark class="alp" data-phrase="{html.escape(alp["phrase"])}" '
                f'style="background:{color}55;border-bottom:3px solid {color}" '
                f'title="{html.escape(alp["phrase"])}: {t1:.2f}-{t2:.2f} s">{html.escape(text)}</mark>')

    def alp_rows(self, image_id: str, phrase_filter: str = "") -> List[List[Any]]:
        """Rows of :data:`ALP_TABLE_HEADERS` for the image's (filtered) ALPs."""
        rows = []
        for a in self.alps_of(image_id, phrase_filter):
            window = a.get("time_window")
            rows.append([a["phrase"], a.get("text", ""), "-" if window is None else f"{window[0]:.2f}-{window[1]:.2f}",
                         a.get("num_points", "-"), ", ".join(f"{float(v):.1f}" for v in a["bbox"])])
        return rows

    def report_rows(self) -> List[Dict[str, Any]]:
        """The curation report as ``{"outcome", "reason", "count"}`` rows for a bar chart: the kept ALPs,
        narratives skipped per reason and phrase candidates dropped per reason."""
        r = self.report
        rows = [{"outcome": "kept", "reason": "ALPs kept", "count": int(r.get("alps") or 0)}]
        rows += [{"outcome": "narrative skipped", "reason": k, "count": int(v)}
                 for k, v in (r.get("skipped") or {}).items()]
        rows += [{"outcome": "phrase dropped", "reason": k, "count": int(v)}
                 for k, v in (r.get("dropped") or {}).items()]
        return rows
