"""Reporting: Markdown tables, JSON with NaN, and the per-category AP plot."""
import json
import math

import pytest
from PIL import Image

from alpseg.evaluation.reporting import (
    markdown_table,
    plot_per_category_ap,
    results_markdown,
    write_json,
    write_report,
)

RESULTS = {"mAP": 0.5, "AP50_base": 0.75, "AP50_novel": 0.25, "per_class": {"/m/a": 0.75, "/m/b": 0.25},
           "num_gt": {"/m/a": 3.0, "/m/b": 1.0}, "num_classes_evaluated": 2, "skipped": {"x": 2}}


def test_markdown_table_layout():
    t = markdown_table(["name", "AP"], [["a|b", "1.0"], ["c", "-"]])
    assert t.splitlines() == ["| name | AP |", "|---|---:|", "| a\\|b | 1.0 |", "| c | - |"]


def test_results_markdown_has_summary_and_sorted_classes():
    md = results_markdown(RESULTS, class_names={"/m/a": "Apple", "/m/b": "Bus"}, base_classes=["/m/a"])
    assert "| mAP (AP50) | 50.0 |" in md and "| AP50-base | 75.0 |" in md and "| AP50-novel | 25.0 |" in md
    assert md.index("| Apple | /m/a | base | 75.0 | 3.000 |") < md.index("| Bus | /m/b | novel | 25.0 | 1.000 |")
    assert "| x | 2 |" in md


def test_write_json_turns_nan_into_null(tmp_path):
    path = tmp_path / "r.json"
    write_json(str(path), {"a": float("nan"), "b": [1.5, float("inf")]})
    assert json.loads(path.read_text()) == {"a": None, "b": [1.5, None]}


def test_plot_orders_bars_and_writes_png(tmp_path):
    path = tmp_path / "p.png"
    bars = plot_per_category_ap({"/m/a": 0.2, "/m/b": 0.9, "/m/c": float("nan"), "/m/d": 0.5}, str(path),
                                class_names={"/m/b": "Bus"}, base_classes=["/m/b"])
    assert [b for b, _ in bars] == ["Bus", "/m/d", "/m/a"]
    assert [v for _, v in bars] == pytest.approx([90.0, 50.0, 20.0])
    with Image.open(path) as im:
        assert im.size[0] > 100 and im.size[1] > 100


def test_write_report_files(tmp_path):
    paths = write_report(RESULTS, str(tmp_path), base_classes=["/m/a"])
    assert json.loads(open(paths["json"]).read())["per_class"]["/m/b"] == 0.25
    assert "AP50-novel" in open(paths["markdown"]).read()
    assert math.isfinite(len(open(paths["plot"], "rb").read()))
