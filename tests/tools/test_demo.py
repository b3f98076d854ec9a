"""tools/demo.py: distinct output names, unusable inputs skipped and counted, outputs printed as
written, exit status; the same tool on an ONNX export (tools/export_model.py)."""
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from alpseg.demo.predictor import output_names

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_output_names_are_distinct_and_readable():
    assert output_names(["d/img1.jpg", "d/img2.jpg"]) == ["img1.png", "img2.png"]
    assert output_names(["d/img1.jpg", "d/img1.png"]) == ["img1_jpg.png", "img1_png.png"]
    assert output_names(["r/a/x.jpg", "r/b/x.jpg", "r/y.jpg"]) == ["a__x.png", "b__x.png", "y.png"]
    # the same file given twice still gets two names
    assert output_names(["x.jpg", "x.jpg"]) == ["x_jpg.png", "x_jpg-2.png"]


def _inputs(root, tmp_path):
    """Four usable images (two pairs whose names collide) and three unusable inputs."""
    src = sorted(os.path.join(root, "openimages", "validation", f)
                 for f in os.listdir(os.path.join(root, "openimages", "validation")))[:2]
    d = tmp_path / "in"
    for sub in ("a", "b"):
        (d / sub).mkdir(parents=True)
    shutil.copy(src[0], d / "a" / "x.jpg")
    shutil.copy(src[1], d / "b" / "x.jpg")
    shutil.copy(src[0], d / "img1.jpg")
    cv2.imwrite(str(d / "img1.png"), cv2.imread(src[1]))
    (d / "broken.jpg").write_text("not an image")
    cv2.imwrite(str(d / "tiny.png"), np.zeros((2, 2, 3), np.uint8))
    (d / "folder").mkdir()
    good = [d / "a" / "x.jpg", d / "b" / "x.jpg", d / "img1.jpg", d / "img1.png"]
    bad = [d / "broken.jpg", d / "tiny.png", d / "folder"]
    return [str(p) for p in good], [str(p) for p in bad]


def _demo(args, root):
    env = dict(os.environ, DETECTRON2_DATASETS=root, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "tools/demo.py"] + args, cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.timeout(900)
def test_demo_skips_bad_inputs_keeps_going_and_names_outputs_apart(trained_fcos_mo, miniature_root, tmp_path):
    good, bad = _inputs(miniature_root, tmp_path)
    out = tmp_path / "out"
    model = ["--config-file", trained_fcos_mo["config"], "--weights", trained_fcos_mo["weights"],
             "--vocabulary", ",".join(trained_fcos_mo["vocabulary"]), "--output", str(out)]
    # bad inputs first and in between: the run goes on past them
    proc = _demo(model + ["--input", bad[0], good[0], bad[1], good[1], bad[2], good[2], good[3]], miniature_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # relative to the inputs' common folder (tmp_path/in): a/x.jpg -> a__x.png
    expected = {str(out / n) for n in ("a__x.png", "b__x.png", "img1_jpg.png", "img1_png.png")}
    assert set(proc.stdout.split()) == expected
    assert set(os.listdir(out)) == {os.path.basename(p) for p in expected}
    assert "skipped 1 directory, 1 too_small, 1 unreadable" in proc.stderr
    assert f"skipped {bad[0]}" in proc.stderr and "2x2 px" in proc.stderr

    # nothing usable: nothing written, exit 1
    proc = _demo(model + ["--input"] + bad + ["--output", str(tmp_path / "none")], miniature_root)
    assert proc.returncode == 1 and "no image was written" in proc.stderr
    assert not (tmp_path / "none").exists()


@pytest.mark.timeout(900)
def test_export_tool_and_demo_on_the_onnx_export(trained_fcos_mo, miniature_root, tmp_path):
    pytest.importorskip("onnxruntime")
    good, _ = _inputs(miniature_root, tmp_path)
    env = dict(os.environ, DETECTRON2_DATASETS=miniature_root, OMP_NUM_THREADS="1")
    export = [sys.executable, "tools/export_model.py", "--config-file", trained_fcos_mo["config"],
              "--weights", trained_fcos_mo["weights"], "--vocabulary", ",".join(trained_fcos_mo["vocabulary"]),
              "--sample-image", good[0], "--format", "onnx", "--output", str(tmp_path / "exp")]
    proc = subprocess.run(export, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    model = proc.stdout.strip().splitlines()[-1]
    assert model == str(tmp_path / "exp" / "model.onnx") and os.path.isfile(model + ".json")
    proc = _demo(["--onnx", model, "--input", good[2], good[3], "--output", str(tmp_path / "out")], miniature_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == [str(tmp_path / "out" / "img1_jpg.png"), str(tmp_path / "out" / "img1_png.png")]

    # a vocabulary with a baked export is refused with a hint, as is a missing sample image
    proc = _demo(["--onnx", model, "--input", good[2], "--vocabulary", "person", "--phrase-bank",
                  trained_fcos_mo["bank"]], miniature_root)
    assert proc.returncode == 2 and "--embeddings-input" in proc.stderr
    proc = subprocess.run(export[:-6] + ["--sample-image", str(tmp_path / "nope.jpg"), "--output", str(tmp_path / "e2")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and "nope.jpg: no such file" in proc.stderr


@pytest.mark.timeout(900)
def test_export_tool_reads_the_meta_architecture_from_the_config(trained_mask_rcnn_star, miniature_root, tmp_path):
    """The same tool exports Mask R-CNN* (no flag says which model it is) and tools/demo.py runs it
    with another vocabulary; a meta-architecture without an export path is a one-line error."""
    pytest.importorskip("onnxruntime")
    import json

    good, _ = _inputs(miniature_root, tmp_path)
    env = dict(os.environ, DETECTRON2_DATASETS=miniature_root, OMP_NUM_THREADS="1")
    t = trained_mask_rcnn_star
    export = [sys.executable, "tools/export_model.py", "--config-file", t["config"], "--weights", t["weights"],
              "--vocabulary", ",".join(t["vocabulary"]), "--sample-image", good[0], "--embeddings-input",
              "--no-progress", "--output", str(tmp_path / "exp")]
    proc = subprocess.run(export, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    model = proc.stdout.strip().splitlines()[-1]
    with open(model + ".json") as f:
        meta = json.load(f)
    assert (meta["model_kind"], meta["meta_architecture"]) == ("mask_rcnn_star", "MaskRCNNStar")
    assert meta["phrase_bank"] == t["bank"] and meta["inputs"] == ["image", "phrase_embeddings"]
    proc = _demo(["--onnx", model, "--vocabulary", "person,apple", "--input", good[2], "--output",
                  str(tmp_path / "out")], miniature_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == [str(tmp_path / "out" / "img1.png")]

    closed = (export[:3] + ["configs/fcos_reimpl/fcos_R_50_FPN_1x_mask.yaml"] + export[4:-2]
              + ["--output", str(tmp_path / "e2")])
    closed = subprocess.run(closed + ["MODEL.RESNETS.DEPTH", "18", "MODEL.RESNETS.RES2_OUT_CHANNELS", "64"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert closed.returncode == 1, closed.stderr[-3000:]
    assert "export supports MODEL.META_ARCHITECTURE FCOSMO and MaskRCNNStar; got FCOSMask" in closed.stderr
    assert not (tmp_path / "e2").exists()
