"""tools/eval_oid_challenge.py: the command line of SPEC 2.1 on challenge CSV files."""
import importlib.util
import json
import os

import numpy as np
import pytest

from alpseg.evaluation.oid_io import (
    BoxRow,
    ChallengeGroundTruth,
    ImagePredictions,
    LabelRow,
    MaskRow,
    write_ground_truth_csvs,
    write_predictions_csv,
)
from alpseg.evaluation.oid_masks import encode_challenge_mask, encode_rle

TOOL = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "eval_oid_challenge.py")


def _tool():
    spec = importlib.util.spec_from_file_location("eval_oid_challenge", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_command_line(tmp_path):
    h, w = 8, 8
    a = np.zeros((h, w), np.uint8)
    a[0:4, 0:4] = 1
    b = np.zeros((h, w), np.uint8)
    b[4:8, 4:8] = 1
    gt = ChallengeGroundTruth(
        boxes=[BoxRow("i1", "/m/a", 0.0, 0.5, 0.0, 0.5, 0), BoxRow("i1", "/m/b", 0.5, 1.0, 0.5, 1.0, 0)],
        masks=[MaskRow("i1", "/m/a", w, h, 0.0, 0.0, 0.5, 0.5, 0, encode_challenge_mask(a)),
               MaskRow("i1", "/m/b", w, h, 0.5, 0.5, 1.0, 1.0, 0, encode_challenge_mask(b))],
        labels=[LabelRow("i1", "/m/a", 1), LabelRow("i1", "/m/b", 1)])
    p = {k: str(tmp_path / f"{k}.csv") for k in ("boxes", "masks", "labels", "pred")}
    write_ground_truth_csvs(gt, p["boxes"], p["masks"], p["labels"])
    # /m/a found; /m/b: an FP (a's mask) above the TP
    write_predictions_csv(p["pred"], {"i1": ImagePredictions(["/m/a", "/m/b", "/m/b"], [0.9, 0.8, 0.7],
                                                             [encode_rle(a), encode_rle(a), encode_rle(b)])})
    (tmp_path / "base.txt").write_text("/m/a\n")
    (tmp_path / "classes.csv").write_text("/m/a,Apple\n/m/b,Bus\n")
    out = tmp_path / "results.json"
    _tool().main(["--boxes", p["boxes"], "--masks", p["masks"], "--image-labels", p["labels"],
                  "--class-descriptions", str(tmp_path / "classes.csv"), "--predictions", p["pred"],
                  "--base-classes", str(tmp_path / "base.txt"), "--group-of-weight", "1.0", "--output", str(out),
                  "--markdown", str(tmp_path / "r.md"), "--plot", str(tmp_path / "r.png"), "--quiet"])
    r = json.loads(out.read_text())
    assert r["per_class"] == {"/m/a": 1.0, "/m/b": 0.5}
    assert r["mAP"] == pytest.approx(0.75)
    assert r["AP50_base"] == 1.0 and r["AP50_novel"] == 0.5
    assert r["class_names"] == {"/m/a": "Apple", "/m/b": "Bus"}
    assert "Bus" in (tmp_path / "r.md").read_text() and (tmp_path / "r.png").stat().st_size > 0


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no such file"):
        _tool().main(["--boxes", str(tmp_path / "nope.csv"), "--masks", "x", "--image-labels", "y",
                      "--predictions", "z", "--output", str(tmp_path / "o.json")])
