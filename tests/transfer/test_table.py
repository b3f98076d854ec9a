"""The results table: NaN, no reference value, not run, missing dataset and failed are told apart."""
from __future__ import annotations

import math

from alpseg.transfer.table import LEGEND, NAN, NO_REFERENCE, load_references, results_table, table_markdown


def test_each_state_has_its_own_mark():
    status = {
        "voc07_svm": {"status": "done", "metrics": {"mAP": math.nan}},
        "in1k_linear": {"status": "done", "metrics": {"top1": None}},  # NaN after a JSON round trip
        "inat18": {"status": "failed", "error": "RuntimeError: x"},
        "coco_limited_10": {"status": "missing_dataset", "missing": ["/d/coco"]},
        "voc_detection": {"status": "done", "metrics": {"bbox/AP": 12.345, "bbox/AP50": 20.0, "bbox/AP75": 5.0}},
    }
    tasks = ["voc07_svm", "in1k_linear", "inat18", "coco_limited_10", "voc_detection", "lvis_instance"]
    columns, rows = results_table(status, tasks, "mine.pth")
    new = rows[-1]["values"]
    assert new["voc07_svm/mAP"] == new["in1k_linear/top1"] == NAN
    assert new["inat18/top1"] == "failed" and new["coco_limited_10/bbox/AP"] == "missing dataset"
    assert new["lvis_instance/segm/AP"] == "not run" and new["voc_detection/bbox/AP"] == 12.345
    md = table_markdown(columns, rows)
    mine = md.splitlines()[-1]
    assert mine.startswith("| **mine.pth** | – | this run | NaN | NaN | failed | missing dataset | missing dataset "
                           "| 12.3 |")
    assert mine.endswith("| not run | not run | not run |")
    # a reference row without a value in a column shows the no-reference mark, never NaN
    virtex = next(line for line in md.splitlines() if line.startswith("| VirTex | 118K | VirTex Table 2 |"))
    assert "NaN" not in virtex and f" {NO_REFERENCE} " in virtex
    assert md.splitlines()[1] == "|---|---|---|" + "---:|" * len(columns)
    assert NO_REFERENCE in LEGEND and NAN in LEGEND and "failed" in LEGEND
    assert len(rows) == 1 + sum(any(k["key"] in r["values"] for k in columns) for r in load_references())
