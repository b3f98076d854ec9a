"""The embedded default runs end to end through the real tools (a 2-iteration schedule here), writes
the results table and pictures, and tools/demo.py segments images with a command-line vocabulary."""
import json
import os

import pytest

from alpseg.demo.table3 import MODELS, format_table, run_table3


@pytest.mark.timeout(1200)
def test_miniature_table3_pipeline_and_demo_tool(tmp_path):
    out = tmp_path / "demo"
    results = run_table3(str(out), seed=0, parallel=2, iterations=2)
    assert set(results["models"]) == set(MODELS)
    for metrics in results["models"].values():
        for key in ("AP50_base", "AP50_novel"):
            assert 0.0 <= metrics[key] <= 100.0
    # curation found ALPs of novel objects (the miniature narrators name them)
    assert results["alp_curation"]["alps"] > 100 and results["alp_curation"]["unique_phrases"] >= 10
    with open(out / "results.json") as f:
        assert json.load(f)["models"] == results["models"]
    table = (out / "results.md").read_text()
    assert table.strip() == format_table(results) and len(table.strip().splitlines()) == 2 + len(MODELS)
    # pictures: curated ALPs and tools/demo.py predictions with the vocabulary from the command line
    assert len(os.listdir(out / "alps_pictures")) == 4
    assert len([f for f in os.listdir(out / "predictions") if f.endswith(".png")]) == 4
    # a second run reuses every finished step (nothing is retrained)
    mtime = os.path.getmtime(out / "fcos_mo_alp" / "model_final.pth")
    run_table3(str(out), seed=0, parallel=2, iterations=2)
    assert os.path.getmtime(out / "fcos_mo_alp" / "model_final.pth") == mtime
