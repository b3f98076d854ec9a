"""tools/run_demo.py: seeds, rows and trailing KEY VALUE overrides reach run_table3; bad requests exit non-zero."""
import importlib.util
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tool():
    spec = importlib.util.spec_from_file_location("run_demo_tool", os.path.join(REPO, "tools", "run_demo.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rows_and_overrides_reach_the_pipeline(tmp_path, monkeypatch):
    tool, calls = _tool(), []
    monkeypatch.setattr(tool, "run_table3", lambda output, **kw: calls.append((output, kw)))
    out = str(tmp_path / "w64")
    assert tool.main(["--output", out, "--seeds", "0,2", "--models", "open_vocab,fcos_mo_alp", "--no-progress",
                      "MODEL.ROI_MASK_HEAD.HOURGLASS_WIDTH", "64"]) == 0
    (output, kw), = calls
    assert output == out and kw["seeds"] == [0, 2] and kw["models"] == ["open_vocab", "fcos_mo_alp"]
    assert kw["extra_opts"] == ["MODEL.ROI_MASK_HEAD.HOURGLASS_WIDTH", "64"] and kw["progress"] is False
    calls.clear()
    assert tool.main(["--output", out]) == 0  # defaults: every FCOS-MO row (models None), no overrides
    assert calls[0][1]["models"] is None and calls[0][1]["extra_opts"] == []


def test_bad_requests_exit_non_zero(tmp_path, capsys):
    tool = _tool()
    with pytest.raises(SystemExit) as exit_info:  # an override without its value
        tool.main(["--output", str(tmp_path / "o"), "MODEL.ROI_MASK_HEAD.HOURGLASS_WIDTH"])
    assert exit_info.value.code == 2 and "KEY VALUE" in capsys.readouterr().err
    assert tool.main(["--output", str(tmp_path / "o"), "--models", "nope"]) == 1  # before any work
    assert "unknown demo models" in capsys.readouterr().err and not (tmp_path / "o").exists()
