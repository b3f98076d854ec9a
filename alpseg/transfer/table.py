"""The transfer results table: published reference rows beside the new backbone's row.

Cells say different things differently: a number; ``NaN`` (the metric was computed and is not a
number, e.g. AP without ground truth; stored as ``null`` in JSON); ``–`` (the paper reports no value
for that column); and, in the new row, the task's state when it has no number: ``not run``,
``missing dataset`` or ``failed``. The legend printed under the table repeats this.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Dict, List, Mapping, Sequence, Tuple

from alpseg.utils.markdown import markdown_table

from .tasks import TASKS

__all__ = ["REFERENCES", "NO_REFERENCE", "NAN", "LEGEND", "load_references", "results_table", "table_markdown"]

REFERENCES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "resources", "references.json")
NO_REFERENCE = "–"
NAN = "NaN"
LEGEND = (f"{NO_REFERENCE}: no published value; {NAN}: computed, not a number; "
          "not run / missing dataset / failed: the task's state (see results.json)")


def load_references(path: str = REFERENCES) -> List[Dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)["rows"]


def _metric_cell(metrics: Mapping[str, Any], key: str) -> Any:
    value = metrics.get(key, NAN)
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return NAN  # NaN / inf, or null once written to JSON
    return value


def results_table(status: Mapping[str, Dict[str, Any]], tasks: Sequence[str], label: str
                  ) -> Tuple[List[Dict[str, str]], List[Dict[str, Any]]]:
    """Columns of the tasks run, the reference rows with at least one value there, and the new row."""
    columns = [{"key": f"{t}/{k}", "label": c} for t in tasks for k, c in TASKS[t].columns]
    keys = [c["key"] for c in columns]
    rows = []
    for ref in load_references():
        values = {k: ref["values"][k] for k in keys if k in ref["values"]}
        if values:
            rows.append({"method": ref["method"], "source": ref["source"], "pretrain_images": ref["pretrain_images"],
                         "values": values})
    new: Dict[str, Any] = {}
    for t in tasks:
        st = status.get(t, {"status": "not_run"})
        for k, _ in TASKS[t].columns:
            if st["status"] == "done":
                new[f"{t}/{k}"] = _metric_cell(st["metrics"], k)
            else:
                new[f"{t}/{k}"] = st["status"].replace("_", " ")
    rows.append({"method": f"**{label}**", "source": "this run", "pretrain_images": "", "values": new})
    return columns, rows


def table_markdown(columns: Sequence[Dict[str, str]], rows: Sequence[Dict[str, Any]]) -> str:
    """One line per row: method, pretraining images, source, then one column per metric (one decimal)."""
    def cell(v: Any) -> str:
        if v is None:
            return NO_REFERENCE
        return f"{v:.1f}" if isinstance(v, (int, float)) else str(v)

    head = ["Method", "Pretrain images", "Source"] + [c["label"] for c in columns]
    body = [[r["method"], r["pretrain_images"] or NO_REFERENCE, r["source"]]
            + [cell(r["values"].get(c["key"])) for c in columns] for r in rows]
    return markdown_table(head, body, align=["left"] * 3 + ["right"] * len(columns))
