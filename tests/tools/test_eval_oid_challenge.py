"""tools/eval_oid_challenge.py: its documented command line (docs/evaluation.md) on challenge CSV files."""
import importlib.util
import json
import os

import numpy as np
import pytest

from alpseg.evaluation.oid.io import (
    BoxRow,
    ChallengeGroundTruth,
    ImagePredictions,
    LabelRow,
    MaskRow,
    write_ground_truth_csvs,
    write_predictions_csv,
)
from alpseg.evaluation.oid.masks import encode_challenge_mask, encode_rle

TOOL = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "eval_oid_challenge.py")


def _tool():
    spec = importlib.util.spec_from_file_location("eval_oid_challenge", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _two_class_files(tmp_path):
    """GT of one image with /m/a (top-left) and /m/b (bottom-right), and the challenge file paths."""
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
    args = ["--boxes", p["boxes"], "--masks", p["masks"], "--image-labels", p["labels"], "--predictions", p["pred"],
            "--output", str(tmp_path / "r.json"), "--no-progress", "--num-workers", "1"]
    return a, b, p, args


def test_command_line(tmp_path):
    a, b, p, _ = _two_class_files(tmp_path)
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


def test_scores_outside_0_1_are_counted_and_reported_or_refused_when_strict(tmp_path):
    a, b, p, args = _two_class_files(tmp_path)
    # a logit (7.5) and a negative score on /m/b; the valid /m/a row is scored as usual
    with open(p["pred"], "w") as f:
        f.write("ImageID,ImageWidth,ImageHeight,LabelName,Score,Mask\n")
        f.write(f"i1,8,8,/m/a,0.9,{encode_challenge_mask(a)}\n")
        f.write(f"i1,8,8,/m/b,7.5,{encode_challenge_mask(b)}\n")
        f.write(f"i1,8,8,/m/b,-3,{encode_challenge_mask(b)}\n")
    assert _tool().main(args) == 0
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["skipped"]["predictions_with_scores_outside_0_1"] == 2
    assert r["per_class"] == {"/m/a": 1.0, "/m/b": 0.0}
    with pytest.raises(SystemExit, match=r"outside \[0, 1\]"):
        _tool().main(args + ["--strict"])


def test_a_header_only_predictions_file_is_an_error_not_map_0(tmp_path):
    _, _, p, args = _two_class_files(tmp_path)
    with open(p["pred"], "w") as f:
        f.write("ImageID,ImageWidth,ImageHeight,LabelName,Score,Mask\n")
    with pytest.raises(SystemExit, match="no prediction rows"):
        _tool().main(args)
    assert not (tmp_path / "r.json").exists()


def test_the_command_exits_non_zero_when_nothing_was_evaluated(tmp_path):
    import subprocess
    import sys

    a, _, p, args = _two_class_files(tmp_path)
    with open(p["pred"], "w") as f:  # predictions for an image the GT does not have
        f.write("ImageID,ImageWidth,ImageHeight,LabelName,Score,Mask\n")
        f.write(f"other,8,8,/m/a,0.9,{encode_challenge_mask(a)}\n")
    proc = subprocess.run([sys.executable, TOOL] + args, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    assert "nothing was evaluated" in proc.stderr and "predictions_on_images_without_gt" in proc.stderr
    assert json.loads((tmp_path / "r.json").read_text())["num_predictions_evaluated"] == 0  # kept for inspection
    with pytest.raises(SystemExit, match="--expand-predictions needs --hierarchy"):
        _tool().main(args + ["--expand-predictions"])


def test_real_rows_against_themselves_through_the_command_line(tmp_path):
    """Six real OID v6 validation masks as GT and as predictions, the shipped class list and hierarchy:
    AP 1 on every leaf; the JSON carries the novel split by base ancestor and the expanded view."""
    from alpseg.data.datasets.class_lists import OID_SEGMENTABLE_CLASSES, OID_SEGMENTABLE_HIERARCHY, oid_base_mids
    from alpseg.evaluation.oid.io import read_ground_truth_csvs

    real = os.path.join(os.path.dirname(TOOL), "..", "..", "shared", "data", "openimages", "real_rows",
                        "validation_masks_6_rows.csv")
    assert os.path.isfile(real), f"{real}: the real Open Images rows are expected in <repo>/../shared"
    gt = read_ground_truth_csvs(None, real, None)
    with open(tmp_path / "pred.csv", "w") as f:
        f.write("ImageID,ImageWidth,ImageHeight,LabelName,Score,Mask\n")
        for k, r in enumerate(gt.masks):
            f.write(f"{r.image_id},{r.width},{r.height},{r.label},{1 - 0.1 * k},{r.mask}\n")
    (tmp_path / "boxes.csv").write_text("ImageID,LabelName,XMin,XMax,YMin,YMax,IsGroupOf\n")
    (tmp_path / "labels.csv").write_text("ImageID,LabelName,Confidence\n")
    (tmp_path / "base.txt").write_text("\n".join(oid_base_mids()) + "\n")
    out = tmp_path / "r.json"
    assert _tool().main(["--boxes", str(tmp_path / "boxes.csv"), "--masks", real, "--image-labels",
                         str(tmp_path / "labels.csv"), "--hierarchy", OID_SEGMENTABLE_HIERARCHY,
                         "--class-descriptions", OID_SEGMENTABLE_CLASSES, "--predictions", str(tmp_path / "pred.csv"),
                         "--base-classes", str(tmp_path / "base.txt"), "--expand-predictions", "--output", str(out),
                         "--markdown", str(tmp_path / "r.md"), "--no-progress", "--num-workers", "1"]) == 0
    r = json.loads(out.read_text())
    names = r["class_names"]
    leaves = {"Hamburger", "Airplane", "Bus", "Elephant", "Spoon"}
    assert {names[m]: ap for m, ap in r["per_class"].items() if names[m] in leaves} == {n: 1.0 for n in leaves}
    assert {names[m] for m in r["per_class"]} == leaves | {"Sandwich", "Aircraft"}
    assert r["AP50_novel_with_base_ancestor"] == 1.0 and r["AP50_novel_without_base_ancestor"] == 0.0
    assert r["expanded_predictions"]["mAP"] == 1.0
    md = (tmp_path / "r.md").read_text()
    assert "AP50-novel, classes with a base ancestor | 100.0" in md
    assert "mAP (AP50), predictions expanded to ancestors | 100.0" in md
