"""tools/eval_transfer.py: flags anywhere, --miniature, one-line errors, non-zero exit when nothing ran."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO, "tools", "eval_transfer.py")


def _tool_module():
    spec = importlib.util.spec_from_file_location("eval_transfer_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True, env=env, timeout=900)


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    import torchvision

    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp("bb") / "r50.pth")
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    return path


def test_flags_anywhere_and_overrides_after_opts_or_double_dash():
    args = _tool_module().parse_args(["--backbone", "b.pth", "SOLVER.MAX_ITER", "2", "--resume", "MODEL.X", "-1",
                                      "--opts", "A", "(64,)", "--tasks", "voc07_svm", "--", "B", "--c"])
    assert args.resume and args.tasks == "voc07_svm" and args.backbone == "b.pth"
    assert args.opts == ["SOLVER.MAX_ITER", "2", "MODEL.X", "-1", "A", "(64,)", "B", "--c"]
    with pytest.raises(SystemExit) as e:
        _tool_module().parse_args(["--backbone", "b.pth", "SOLVER.MAX_ITER"])
    assert e.value.code == 2


def test_nothing_could_run_exits_1(backbone, tmp_path):
    r = _run("--backbone", backbone, "--tasks", "voc07_svm,in1k_linear", "--datasets-root", str(tmp_path / "none"),
             "--output", str(tmp_path / "o"))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == ("error: no task could run (voc07_svm: missing_dataset, in1k_linear: "
                                                "missing_dataset); check --datasets-root or try --miniature")
    assert "| **r50.pth** | – | this run | missing dataset | missing dataset |" in r.stdout


@pytest.mark.parametrize("content,message", [
    (b"", "the checkpoint file is empty (0 bytes)"),
    (b"<!DOCTYPE html><title>404</title>\n", "a text file (starts with b'<!DOCTYPE ht'), not a torch.save"),
])
def test_unreadable_backbone_is_a_one_line_error(tmp_path, content, message):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(content)
    r = _run("--backbone", str(bad), "--tasks", "voc07_svm", "--output", str(tmp_path / "o"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(f"error: {bad}: ") and message in r.stderr


def test_unsupported_arch_is_a_one_line_error(backbone, tmp_path):
    r = _run("--backbone", backbone, "--arch", "resnet18", "--output", str(tmp_path / "o"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: --arch 'resnet18' is not supported")


def test_miniature_writes_every_tree_and_runs(backbone, tmp_path):
    out = tmp_path / "mini"
    r = _run("--backbone", backbone, "--miniature", "--tasks", "in1k_linear,inat18", "--output", str(out),
             "--no-progress", "--set", "inat18.epochs=2")
    assert r.returncode == 0, r.stderr[-3000:]
    root = out / "miniature_datasets"
    for rel in ("VOC2007/JPEGImages", "VOC2012/Annotations", "imagenet/train", "inat2018/train2018.json",
                "coco/annotations/instances_val2017.json", "lvis/lvis_v1_val.json"):
        assert (root / rel).exists(), rel
    assert f"miniature datasets: {root}" in r.stdout
    assert "| **r50.pth** | – | this run |" in r.stdout and "epoch 1/" not in r.stderr  # no progress bars
    summary = json.loads((out / "results.json").read_text())
    assert {t: s["status"] for t, s in summary["tasks"].items()} == {"in1k_linear": "done", "inat18": "done"}
    inat = json.loads((out / "inat18" / "result.json").read_text())
    assert inat["settings"]["epochs"] == 2 and inat["settings"]["crop"] == 32  # the user's --set wins
    assert len(inat["history"]) == 2


def test_miniature_refuses_a_folder_of_other_data(backbone, tmp_path):
    real = tmp_path / "datasets"
    (real / "coco").mkdir(parents=True)
    r = _run("--backbone", backbone, "--miniature", "--datasets-root", str(real), "--output", str(tmp_path / "o"))
    assert r.returncode == 1 and (real / "coco").is_dir() and not (real / "VOC2007").exists()
    assert r.stderr.strip().splitlines()[-1] == (f"error: refusing to write miniature datasets into {real}: it holds "
                                                "files but no miniature manifest.json; choose an empty or new folder "
                                                "for --datasets-root")


def test_misspelt_override_fails_before_any_task_runs(backbone, tmp_path):
    out = tmp_path / "o"
    r = _run("--backbone", backbone, "--tasks", "in1k_linear,coco_instance", "--output", str(out),
             "--datasets-root", str(tmp_path), "--set", "coco_instance.SOLVER.MAXITER=2")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == ("error: coco_instance: Non-existent key: SOLVER.MAXITER "
                                                "(from command-line overrides; check the spelling)")
    assert not (out / "in1k_linear").exists()
