"""alpseg.utils: the one NaN-safe JSON writer, the one Markdown table, the one device picker."""
import json
import math

import numpy as np
import pytest
import torch

from alpseg.utils.device import pick_device
from alpseg.utils.io import json_safe, write_json
from alpseg.utils.markdown import markdown_table


def test_write_json_is_strict_and_converts_numpy_and_torch(tmp_path):
    path = tmp_path / "r" / "results.json"
    write_json(str(path), {"AP": float("nan"), "inf": -math.inf, 3: (np.float32(0.5), np.int64(7)),
                           "t": torch.tensor([1.5, 2.0]), "ok": [1, "x", True, None]})
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard constant {c}")) == {
        "AP": None, "inf": None, "3": [0.5, 7], "t": [1.5, 2.0], "ok": [1, "x", True, None]}
    assert json_safe(np.array([1.0, np.nan])) == [1.0, None]
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]  # no temporary file left


def test_markdown_table_alignment_and_escaping():
    auto = markdown_table(["name", "AP"], [["a|b", 1.5], ["c", "-"]])
    assert auto == "| name | AP |\n|---|---:|\n| a\\|b | 1.5 |\n| c | - |\n"
    explicit = markdown_table(["x", "y"], [["1", "z"]], align=["left", "right"])
    assert explicit.splitlines()[1] == "|---|---:|"
    assert markdown_table(["h"], []) == "| h |\n|---|\n"
    with pytest.raises(ValueError, match="2 cells, header has 1"):
        markdown_table(["h"], [[1, 2]])
    with pytest.raises(ValueError, match="align"):
        markdown_table(["h"], [[1]], align=["center"])


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device() == pick_device(None) == pick_device("AUTO") == torch.device(want)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available; use 'cpu' or 'auto'"):
            pick_device("cuda:1")
