"""The suite: task registry, missing datasets reported, --resume skipping, the results table, the CLI."""
from __future__ import annotations

import functools
import json
import os
import subprocess
import sys

import pytest

from alpseg.transfer.checkpoints import BackboneLoadError
from alpseg.transfer.suite import TASKS, parse_task_overrides, run_suite

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMALL = {
    "voc07_svm": {"resize": 64, "crop": 56, "num_workers": 0, "batch_size": 30, "device": "cpu"},
    "in1k_linear": {"epochs": 1, "batch_size": 8, "crop": 32, "resize": 36, "num_workers": 0, "device": "cpu"},
    "inat18": {"epochs": 1, "batch_size": 8, "crop": 32, "resize": 36, "num_workers": 0, "device": "cpu"},
}
D2_TINY = ["SOLVER.MAX_ITER", "2", "SOLVER.IMS_PER_BATCH", "2", "INPUT.MIN_SIZE_TRAIN", "(64,)", "INPUT.MAX_SIZE_TRAIN",
           "96", "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "96", "TEST.PRECISE_BN.NUM_ITER", "1",
           "DATALOADER.NUM_WORKERS", "0", "MODEL.RPN.POST_NMS_TOPK_TEST", "5", "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE",
           "8", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"]
TASK_LIST = ["voc07_svm", "in1k_linear", "inat18", "coco_instance", "lvis_instance"]


@pytest.fixture(scope="module")
def suite_root(mini_root, coco_world, tmp_path_factory):
    """VOC2007 (60 images a split), ImageFolder and iNat from mini_root, COCO from coco_world; no LVIS."""
    root = tmp_path_factory.mktemp("suite_root")
    for name in ("VOC2007", "imagenet", "inat2018"):
        os.symlink(os.path.join(mini_root, name), root / name)
    os.symlink(os.path.join(coco_world, "coco"), root / "coco")
    return str(root)


@pytest.fixture(scope="module")
def first_run(suite_root, backbone_files, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("suite"))
    summary = run_suite(backbone_files["moco"], TASK_LIST, out, suite_root, d2_opts=D2_TINY, overrides=SMALL)
    return out, summary


def test_registry_and_overrides():
    assert list(TASKS)[:2] == ["voc07_svm", "in1k_linear"]
    assert {f"coco_limited_{p}" for p in (10, 20, 50, 100)} <= set(TASKS)
    assert parse_task_overrides(["voc07_svm.crop=56", "coco_instance.SOLVER.MAX_ITER=2", "inat18.lr_steps=[1,2]"]) == {
        "voc07_svm": {"crop": 56}, "coco_instance": {"SOLVER.MAX_ITER": 2}, "inat18": {"lr_steps": [1, 2]}}
    with pytest.raises(KeyError, match="unknown task 'nope'"):
        parse_task_overrides(["nope.x=1"])
    with pytest.raises(ValueError, match="TASK.KEY=VALUE"):
        parse_task_overrides(["voc07_svm=3"])


def test_suite_runs_reports_and_tabulates(first_run, suite_root):
    out, summary = first_run
    tasks = summary["tasks"]
    assert [tasks[t]["status"] for t in TASK_LIST] == ["done", "done", "done", "done", "missing_dataset"]
    assert os.path.join(suite_root, "lvis", "lvis_v1_train.json") in tasks["lvis_instance"]["missing"]
    for t in TASK_LIST[:4]:
        with open(os.path.join(out, t, "result.json")) as f:
            assert json.load(f)["metrics"] == tasks[t]["metrics"]
    # strict JSON (NaN APs of absent classes are written as null)
    with open(os.path.join(out, "results.json")) as f:
        json.loads(f.read(), parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    md = open(os.path.join(out, "results.md")).read()
    rows = {line.split(" | ")[0].strip("| "): line for line in md.splitlines()[2:]}
    new = rows["**moco.pth.tar**"]
    assert f"{tasks['voc07_svm']['metrics']['mAP']:.1f}" in new and "missing dataset" in new
    assert "| VirTex | 118K | VirTex Table 2 | 88.7 | 53.8 |" in md  # a published reference row
    labels = [c["label"] for c in summary["table"]["columns"]]
    assert labels[:3] == ["VOC07 mAP", "IN-1k top-1", "iNat18 top-1"] and "COCO APmk75" in labels


def test_resume_skips_finished_and_reruns_changed(first_run, suite_root, backbone_files, monkeypatch):
    out, summary = first_run
    calls = []

    def fake(ctx, task_dir, resume, name):
        calls.append(name)
        return {"metrics": {"top1": 12.5, "top5": 50.0}}

    for name in TASK_LIST:
        monkeypatch.setattr(TASKS[name], "run", functools.partial(fake, name=name))
    again = run_suite(backbone_files["moco"], TASK_LIST, out, suite_root, d2_opts=D2_TINY, overrides=SMALL, resume=True)
    assert calls == []  # all finished, lvis still missing
    assert all(again["tasks"][t]["resumed"] for t in TASK_LIST[:4])
    assert {t: again["tasks"][t]["metrics"] for t in TASK_LIST[:4]} == {t: summary["tasks"][t]["metrics"] for t in TASK_LIST[:4]}
    changed = {**SMALL, "in1k_linear": {**SMALL["in1k_linear"], "epochs": 2}}
    third = run_suite(backbone_files["moco"], TASK_LIST, out, suite_root, d2_opts=D2_TINY, overrides=changed, resume=True)
    assert calls == ["in1k_linear"] and third["tasks"]["in1k_linear"]["metrics"]["top1"] == 12.5
    # without --resume every available task runs again
    run_suite(backbone_files["moco"], TASK_LIST[:2], out, suite_root, overrides=SMALL)
    assert calls == ["in1k_linear", "voc07_svm", "in1k_linear"]


def test_failing_task_is_recorded_and_others_run(suite_root, backbone_files, tmp_path, monkeypatch):
    def boom(ctx, task_dir, resume):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(TASKS["in1k_linear"], "run", boom)
    monkeypatch.setattr(TASKS["inat18"], "run", lambda c, d, r: {"metrics": {"top1": 1.0}})
    s = run_suite(backbone_files["plain"], ["in1k_linear", "inat18"], str(tmp_path), suite_root, overrides=SMALL)
    assert s["tasks"]["in1k_linear"]["status"] == "failed" and "out of memory" in s["tasks"]["in1k_linear"]["error"]
    assert s["tasks"]["inat18"]["status"] == "done"


def test_incomplete_backbone_stops_before_any_task(tmp_path, resnet50_tv, suite_root):
    import torch

    torch.save({k: v for k, v in resnet50_tv.state_dict().items() if not k.startswith("layer2.")}, tmp_path / "x.pth")
    with pytest.raises(BackboneLoadError, match="MISSING backbone weight: layer2.0.conv1.weight"):
        run_suite(str(tmp_path / "x.pth"), ["voc07_svm"], str(tmp_path / "o"), suite_root)
    assert not os.path.exists(tmp_path / "o" / "voc07_svm")


def test_cli(suite_root, backbone_files, tmp_path):
    out = str(tmp_path / "cli")
    cmd = [sys.executable, os.path.join(REPO, "tools", "eval_transfer.py"), "--backbone", backbone_files["virtex"],
           "--tasks", "in1k_linear,lvis_instance", "--output", out, "--datasets-root", suite_root]
    cmd += [f"--set=in1k_linear.{k}={v}" for k, v in SMALL["in1k_linear"].items()]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    first = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "lvis_instance: skipped, dataset missing: " + os.path.join(suite_root, "lvis", "lvis_v1_train.json") in first.stdout
    assert "| **virtex.pth** |" in first.stdout
    second = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    with open(os.path.join(out, "results.json")) as f:
        assert json.load(f)["tasks"]["in1k_linear"]["resumed"] is True
