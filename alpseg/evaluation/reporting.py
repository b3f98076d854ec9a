"""Evaluation results to the log, to JSON, to Markdown tables, and to a per-category AP bar plot.

The plot is the paper's Fig. 4 (bottom): one bar per category, sorted by AP, base and novel classes
in two colours. It is drawn with matplotlib's Agg canvas directly (no pyplot), so it neither needs a
display nor changes the backend of a user's interactive session.
"""
from __future__ import annotations

import logging
import math
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from alpseg.utils.io import atomic_open, atomic_write, write_json
from alpseg.utils.markdown import markdown_table

__all__ = [
    "markdown_table",
    "results_markdown",
    "log_results",
    "write_json",
    "plot_per_category_ap",
    "write_report",
]

#: summary rows of an OID result (key, label); the novel split needs a hierarchy (see oid_challenge)
SUMMARY_KEYS = (("AP50_base", "AP50-base"), ("AP50_novel", "AP50-novel"),
                ("AP50_novel_with_base_ancestor", "AP50-novel, classes with a base ancestor"),
                ("AP50_novel_without_base_ancestor", "AP50-novel, classes without a base ancestor"))
BASE_COLOR = "#1f77b4"
NOVEL_COLOR = "#ff7f0e"


def _fmt(value: Any, percent: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{100 * value:.1f}" if percent else f"{value:.3f}"
    return str(value)


def results_markdown(results: Mapping[str, Any], title: str = "Open Images challenge mask AP50",
                     class_names: Optional[Mapping[str, str]] = None,
                     base_classes: Optional[Iterable[str]] = None, percent: bool = True) -> str:
    """Summary table (mAP, AP50-base, AP50-novel and its split by base ancestor, the same with expanded
    predictions when present) and a per-class table sorted by AP.

    ``results`` is what :func:`alpseg.evaluation.oid.challenge.evaluate_oid_challenge` returns (APs
    as fractions; shown as percentages when ``percent``).
    """
    names = dict(class_names or results.get("class_names") or {})
    base = set(base_classes or [])
    summary = [["mAP (AP50)", _fmt(results.get("mAP"), percent)]]
    expanded = results.get("expanded_predictions") or {}
    for key, label in SUMMARY_KEYS:
        if key in results:
            summary.append([label, _fmt(results[key], percent)])
    for key, label in (("mAP", "mAP (AP50)"),) + SUMMARY_KEYS:
        if key in expanded:
            summary.append([f"{label}, predictions expanded to ancestors", _fmt(expanded[key], percent)])
    summary.append(["classes evaluated", results.get("num_classes_evaluated", len(results.get("per_class", {})))])
    out = [f"## {title}\n", markdown_table(["metric", "value"], summary)]
    skipped = results.get("skipped") or {}
    if skipped:
        out += ["\nSkipped or dropped:\n", markdown_table(["what", "count"], sorted(skipped.items()))]
    per_class = results.get("per_class") or {}
    if per_class:
        num_gt = results.get("num_gt") or {}
        rows = []
        for mid, ap in sorted(per_class.items(), key=lambda kv: (-_sortable(kv[1]), kv[0])):
            row = [names.get(mid, mid), mid]
            if base:
                row.append("base" if mid in base else "novel")
            row += [_fmt(ap, percent), _fmt(num_gt.get(mid), False) if mid in num_gt else "-"]
            rows.append(row)
        header = ["class", "id"] + (["split"] if base else []) + ["AP50", "GT"]
        out += ["\nPer class:\n", markdown_table(header, rows)]
    return "".join(out)


def _sortable(ap: Any) -> float:
    return -1.0 if ap is None or (isinstance(ap, float) and math.isnan(ap)) else float(ap)


def log_results(results: Mapping[str, Any], logger: Optional[logging.Logger] = None,
                title: str = "Open Images challenge mask AP50", percent: bool = True) -> None:
    """One summary line plus the per-class table at INFO level."""
    logger = logger or logging.getLogger(__name__)
    parts = [f"mAP={_fmt(results.get('mAP'), percent)}"]
    for key, _ in SUMMARY_KEYS:
        if key in results:
            parts.append(f"{key}={_fmt(results[key], percent)}")
    logger.info("%s: %s", title, ", ".join(parts))
    logger.info("\n%s", results_markdown(results, title=title, percent=percent))


def plot_per_category_ap(per_class: Mapping[str, float], path: str,
                         class_names: Optional[Mapping[str, str]] = None,
                         base_classes: Optional[Iterable[str]] = None,
                         title: str = "Per-category mask AP50", percent: bool = True) -> List[Tuple[str, float]]:
    """Bar plot of per-category AP sorted from best to worst (base / novel coloured), saved to ``path``.

    Returns the plotted (label, value) pairs in bar order. Classes whose AP is undefined are left out.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    names = dict(class_names or {})
    base = set(base_classes or [])
    items = [(k, float(v)) for k, v in per_class.items() if v is not None and not math.isnan(float(v))]
    items.sort(key=lambda kv: (-kv[1], kv[0]))
    scale = 100.0 if percent else 1.0
    bars = [(names.get(k, k), v * scale) for k, v in items]
    n = max(len(bars), 1)
    fig = Figure(figsize=(max(6.0, 0.13 * n + 1.5), 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    colors = [BASE_COLOR if k in base else NOVEL_COLOR for k, _ in items] if base else [BASE_COLOR] * len(items)
    ax.bar(range(len(bars)), [v for _, v in bars], color=colors, width=0.8)
    ax.set_xticks(range(len(bars)))
    ax.set_xticklabels([b for b, _ in bars], rotation=90, fontsize=max(3, min(8, int(600 / n))))
    ax.set_xlim(-0.6, len(bars) - 0.4)
    ax.set_ylabel("AP50 (%)" if percent else "AP50")
    ax.set_title(title)
    if base:
        ax.legend(handles=[Patch(color=BASE_COLOR, label="base"), Patch(color=NOVEL_COLOR, label="novel")],
                  loc="upper right")
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, dpi=150, format=os.path.splitext(path)[1].lstrip(".") or "png")
    return bars


def write_report(results: Mapping[str, Any], output_dir: str, prefix: str = "oid_challenge",
                 class_names: Optional[Mapping[str, str]] = None, base_classes: Optional[Iterable[str]] = None,
                 title: str = "Open Images challenge mask AP50", plot: bool = True) -> Dict[str, str]:
    """``{prefix}_results.json``, ``{prefix}_results.md`` and ``{prefix}_per_category_ap.png``."""
    base = list(base_classes or [])
    paths = {"json": os.path.join(output_dir, f"{prefix}_results.json"),
             "markdown": os.path.join(output_dir, f"{prefix}_results.md")}
    write_json(paths["json"], results)
    atomic_write(paths["markdown"], results_markdown(results, title, class_names, base))
    if plot and results.get("per_class"):
        paths["plot"] = os.path.join(output_dir, f"{prefix}_per_category_ap.png")
        plot_per_category_ap(results["per_class"], paths["plot"], class_names or results.get("class_names"), base,
                             title=title)
    return paths
