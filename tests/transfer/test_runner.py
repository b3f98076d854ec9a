"""The runner: kill-and-resume per task kind, a changed backbone starts fresh, one log set-up, per-task logs."""
from __future__ import annotations

import json
import logging
import os

import pytest
import torch

from alpseg.transfer import classify, voc07_svm
from alpseg.transfer.runner import run_suite
from alpseg.transfer.tasks import TASKS

TINY = {"epochs": 2, "batch_size": 8, "crop": 32, "resize": 36, "num_workers": 0, "eval_batch_size": 16,
        "device": "cpu"}
SVM = {"resize": 64, "crop": 56, "batch_size": 30, "num_workers": 0, "device": "cpu", "costs": (0.1, 1.0)}
OVERRIDES = {"in1k_linear": TINY, "inat18": dict(TINY, lr_steps=(1,)), "voc07_svm": SVM}


def _result(out, task):
    with open(os.path.join(out, task, "result.json")) as f:
        return json.load(f)


def _kill_classification_in_epoch_2(monkeypatch):
    real = classify.lr_factor

    def killed(iteration, iters_per_epoch, s):
        if iteration >= iters_per_epoch:
            raise KeyboardInterrupt
        return real(iteration, iters_per_epoch, s)

    monkeypatch.setattr(classify, "lr_factor", killed)


@pytest.mark.parametrize("task", ["in1k_linear", "inat18"])
def test_killed_classification_task_resumes_exactly(task, mini_root, backbone_files, tmp_path, monkeypatch):
    whole = run_suite(backbone_files["plain"], [task], str(tmp_path / "whole"), mini_root, overrides=OVERRIDES)
    out = str(tmp_path / "killed")
    with monkeypatch.context() as m:
        _kill_classification_in_epoch_2(m)
        with pytest.raises(KeyboardInterrupt):
            run_suite(backbone_files["plain"], [task], out, mini_root, overrides=OVERRIDES)
    assert torch.load(os.path.join(out, task, "last.pth"), weights_only=True)["epoch"] == 1
    resumed = run_suite(backbone_files["plain"], [task], out, mini_root, overrides=OVERRIDES, resume=True)
    assert resumed["tasks"][task]["metrics"] == whole["tasks"][task]["metrics"]
    assert _result(out, task)["history"] == _result(str(tmp_path / "whole"), task)["history"]
    a = torch.load(os.path.join(tmp_path, "whole", task, "last.pth"), weights_only=True)["model"]
    b = torch.load(os.path.join(out, task, "last.pth"), weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit-identical


def test_killed_svm_task_fits_only_the_rest(mini_root, backbone_files, tmp_path, monkeypatch):
    whole = run_suite(backbone_files["plain"], ["voc07_svm"], str(tmp_path / "whole"), mini_root, overrides=OVERRIDES)
    out = str(tmp_path / "killed")
    real, fits = voc07_svm.fit_class_svm, {"count": 0, "kill_at": 5}

    def fit(*args, **kwargs):
        if fits["count"] == fits["kill_at"]:
            raise KeyboardInterrupt
        fits["count"] += 1
        return real(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(voc07_svm, "fit_class_svm", fit)
        with pytest.raises(KeyboardInterrupt):
            run_suite(backbone_files["plain"], ["voc07_svm"], out, mini_root, overrides=OVERRIDES)
        fits.update(count=0, kill_at=None)
        resumed = run_suite(backbone_files["plain"], ["voc07_svm"], out, mini_root, overrides=OVERRIDES, resume=True)
    assert fits["count"] == 20 - 5  # the five SVMs fitted before the kill were kept
    assert resumed["tasks"]["voc07_svm"]["metrics"] == whole["tasks"]["voc07_svm"]["metrics"]


def test_other_backbone_starts_fresh_and_keeps_only_its_own_history(mini_root, backbone_files, second_backbone,
                                                                     tmp_path, monkeypatch):
    out = str(tmp_path / "o")
    with monkeypatch.context() as m:  # the first backbone is killed half-way: its last.pth is at epoch 1
        _kill_classification_in_epoch_2(m)
        with pytest.raises(KeyboardInterrupt):
            run_suite(backbone_files["plain"], ["in1k_linear"], out, mini_root, overrides=OVERRIDES)
    first_state = json.load(open(os.path.join(out, "in1k_linear", "task.json")))
    second = run_suite(second_backbone, ["in1k_linear"], out, mini_root, overrides=OVERRIDES, resume=True)
    fresh = run_suite(second_backbone, ["in1k_linear"], str(tmp_path / "fresh"), mini_root, overrides=OVERRIDES)
    result = _result(out, "in1k_linear")
    assert result["fingerprint"] == second["fingerprint"] != first_state["fingerprint"]
    assert result["history"] == _result(str(tmp_path / "fresh"), "in1k_linear")["history"]  # not the first's epoch 1
    assert second["tasks"]["in1k_linear"]["metrics"] == fresh["tasks"]["in1k_linear"]["metrics"]
    stale = os.path.join(out, "in1k_linear.stale-1")  # moved aside, not deleted
    assert json.load(open(os.path.join(stale, "task.json"))) == first_state
    assert torch.load(os.path.join(stale, "last.pth"), weights_only=True)["epoch"] == 1


def test_one_console_set_up_and_a_log_file_per_task(mini_root, backbone_files, tmp_path, monkeypatch):
    def noisy(name):
        def run(ctx, task_dir, resume):
            logging.getLogger("alpseg.transfer.test").info("inside %s", name)
            logging.getLogger("detectron2.engine").info("detectron2 inside %s", name)
            return {"metrics": {"top1": 1.0}}
        return run

    for name in ("in1k_linear", "inat18"):
        monkeypatch.setattr(TASKS[name], "run", noisy(name))
    handlers = {n: list(logging.getLogger(n).handlers) for n in ("alpseg", "detectron2")}
    for k in range(3):
        run_suite(backbone_files["plain"], ["in1k_linear", "inat18"], str(tmp_path / f"o{k}"), mini_root)
    assert {n: list(logging.getLogger(n).handlers) for n in handlers} == handlers  # nothing added or left behind
    log = open(tmp_path / "o2" / "inat18" / "log.txt").read()
    assert "inside inat18" in log and "detectron2 inside inat18" in log and "in1k_linear" not in log


def test_unsupported_arch_is_refused_before_converting(backbone_files, tmp_path, mini_root):
    with pytest.raises(ValueError, match="--arch 'resnet18' is not supported"):
        run_suite(backbone_files["plain"], ["voc07_svm"], str(tmp_path), mini_root, arch="resnet18")
    assert not os.listdir(tmp_path)
