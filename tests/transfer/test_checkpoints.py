"""Checkpoint layouts -> detectron2 names: the converted trunk computes what torchvision computes."""
from __future__ import annotations

import pickle
import subprocess
import sys
import os

import pytest
import torch

from alpseg.transfer.backbone import build_resnet_trunk
from alpseg.transfer.checkpoints import (
    BackboneLoadError,
    convert_checkpoint,
    save_detectron2_pkl,
    verify_backbone_loaded,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tv_layer4(model, x):
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    return model.layer4(model.layer3(model.layer2(model.layer1(x))))


@pytest.fixture(scope="module")
def reference(resnet50_tv):
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return x, _tv_layer4(resnet50_tv, x)


@pytest.mark.parametrize("layout,prefix,wrapper", [
    ("plain", "", ()),
    ("moco", "module.encoder_q.", ("state_dict",)),
    ("virtex", "visual.cnn.", ("model",)),
])
def test_layouts_convert_to_same_res5(backbone_files, reference, layout, prefix, wrapper):
    weights, report = convert_checkpoint(backbone_files[layout])
    assert report.layout.prefix == prefix and report.layout.wrapper == wrapper
    assert report.ok and len(weights) == 265 and not report.unmatched
    trunk = build_resnet_trunk(weights).eval()
    x, want = reference
    with torch.no_grad():
        got = trunk(x)["res5"]
    assert got.shape == want.shape == (2, 2048, 2, 2)
    scale = want.abs().max().item()
    assert scale > 0
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * scale)


def test_report_accounts_for_every_key(backbone_files):
    _, plain = convert_checkpoint(backbone_files["plain"])
    assert plain.dropped_heads == ["fc.weight", "fc.bias"]
    assert len(plain.dropped_bookkeeping) == 53  # one step counter per BN layer
    _, moco = convert_checkpoint(backbone_files["moco"])
    assert sorted(moco.dropped_heads) == sorted(f"module.encoder_q.fc.{i}.{p}" for i in (0, 2) for p in ("weight", "bias"))
    assert "module.queue" in moco.outside_prefix
    assert any(k.startswith("module.encoder_k.") for k in moco.outside_prefix)
    _, virtex = convert_checkpoint(backbone_files["virtex"])
    assert sorted(virtex.outside_prefix) == ["textual.embedding.words.weight", "textual.output.weight"]
    assert "visual.cnn.fc.weight" in virtex.dropped_heads


def test_missing_stage_fails_naming_keys(tmp_path, resnet50_tv):
    sd = {k: v for k, v in resnet50_tv.state_dict().items() if not k.startswith("layer3.")}
    sd["layer1.0.extra.weight"] = torch.zeros(3)
    path = str(tmp_path / "no_layer3.pth")
    torch.save({"state_dict": {"backbone." + k: v for k, v in sd.items()}}, path)
    with pytest.raises(BackboneLoadError) as err:
        convert_checkpoint(path)
    msg = str(err.value)
    assert "MISSING backbone weight: backbone.layer3.0.conv1.weight" in msg
    assert "backbone.layer3.5.bn3.running_var" in msg
    assert "UNMATCHED (not a resnet50 trunk weight, not loaded): backbone.layer1.0.extra.weight" in msg
    _, report = convert_checkpoint(path, strict=False)
    n_layer3 = sum(1 for k in resnet50_tv.state_dict() if k.startswith("layer3.") and "num_batches" not in k)
    assert len(report.missing) == n_layer3 and not report.ok


def test_wrong_shape_fails(tmp_path, resnet50_tv):
    sd = dict(resnet50_tv.state_dict())
    sd["layer2.0.conv2.weight"] = torch.zeros(128, 128, 1, 1)
    path = str(tmp_path / "bad.pth")
    torch.save(sd, path)
    with pytest.raises(BackboneLoadError, match=r"SHAPE MISMATCH layer2.0.conv2.weight"):
        convert_checkpoint(path)


def test_ambiguous_and_absent_resnet(tmp_path, resnet50_tv):
    sd = resnet50_tv.state_dict()
    two = {**{f"a.{k}": v for k, v in sd.items()}, **{f"b.{k}": v for k, v in sd.items()}}
    path = str(tmp_path / "two.pth")
    torch.save(two, path)
    with pytest.raises(BackboneLoadError, match="several ResNets"):
        convert_checkpoint(path)
    weights, report = convert_checkpoint(path, prefix="b.")
    assert report.ok and torch.equal(weights["stem.conv1.weight"], sd["conv1.weight"])
    torch.save({"w": torch.zeros(3)}, path)
    with pytest.raises(BackboneLoadError, match="no ResNet found"):
        convert_checkpoint(path)


def test_pkl_roundtrip_and_detectron2_style_input(tmp_path, backbone_files):
    weights, _ = convert_checkpoint(backbone_files["plain"])
    out = str(tmp_path / "bb.pkl")
    save_detectron2_pkl(weights, out)
    with open(out, "rb") as f:
        payload = pickle.load(f)
    assert payload["matching_heuristics"] is True and payload["__author__"] == "alpseg"
    assert set(payload["model"]) == set(weights)
    # a detectron2-named file (our own output) converts to itself
    again, report = convert_checkpoint(out)
    assert report.layout.style == "detectron2" and report.ok
    assert all(torch.equal(again[k], weights[k]) for k in weights)


def test_verify_backbone_loaded(backbone_files):
    weights, _ = convert_checkpoint(backbone_files["plain"])
    holder = torch.nn.Module()
    holder.bottom_up = build_resnet_trunk(weights)
    assert len(verify_backbone_loaded(holder, weights)) == len(weights)
    with torch.no_grad():
        holder.bottom_up.res4[0].conv1.weight.zero_()
    with pytest.raises(BackboneLoadError, match="res4.0.conv1.weight"):
        verify_backbone_loaded(holder, weights)


def test_convert_backbone_cli(tmp_path, backbone_files):
    out = str(tmp_path / "cli.pkl")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    ok = subprocess.run([sys.executable, os.path.join(REPO, "tools", "convert_backbone.py"), backbone_files["moco"], out],
                        capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    assert "converted 265 backbone tensors" in ok.stdout and os.path.isfile(out)
    bad = str(tmp_path / "bad.pth")
    torch.save({k: v for k, v in torch.load(backbone_files["plain"]).items() if not k.startswith("layer4.2.")}, bad)
    fail = subprocess.run([sys.executable, os.path.join(REPO, "tools", "convert_backbone.py"), bad, str(tmp_path / "x.pkl")],
                          capture_output=True, text=True, env=env)
    assert fail.returncode != 0
    assert "MISSING backbone weight: layer4.2.conv1.weight" in fail.stdout + fail.stderr
    assert not os.path.exists(str(tmp_path / "x.pkl"))


def test_non_finite_weights_are_an_error_not_a_complete_backbone(tmp_path, resnet50_tv):
    sd = dict(resnet50_tv.state_dict())
    sd["layer2.1.conv2.weight"] = torch.full_like(sd["layer2.1.conv2.weight"], float("nan"))
    sd["layer3.0.bn1.running_var"] = sd["layer3.0.bn1.running_var"].clone()
    sd["layer3.0.bn1.running_var"][:3] = float("inf")
    torch.save(sd, tmp_path / "nan.pth")
    weights, report = convert_checkpoint(str(tmp_path / "nan.pth"), strict=False)
    assert not report.ok and report.non_finite == [("layer2.1.conv2.weight", 128 * 128 * 9, 128 * 128 * 9),
                                                   ("layer3.0.bn1.running_var", 3, 256)]
    assert report.missing == [] and len(weights) == 265 - 2
    text = report.summary()
    assert "NON-FINITE layer3.0.bn1.running_var: 3 of 256 values are NaN or Inf" in text
    assert "backbone complete" not in text and text.endswith("0 missing, 0 mis-shaped, 2 with NaN/Inf")
    out = tmp_path / "nan.pkl"
    r = subprocess.run([sys.executable, os.path.join(REPO, "tools", "convert_backbone.py"), str(tmp_path / "nan.pth"),
                        str(out)], capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 1 and "NON-FINITE layer2.1.conv2.weight" in r.stdout and not out.exists()


@pytest.fixture(scope="module")
def broken_files(tmp_path_factory, resnet50_tv):
    root = tmp_path_factory.mktemp("broken")
    torch.save(resnet50_tv.state_dict(), root / "full.pth")
    data = (root / "full.pth").read_bytes()
    (root / "truncated.pth").write_bytes(data[: len(data) // 2])
    (root / "empty.pth").write_bytes(b"")
    (root / "page.pth").write_text("<html><body>404 Not Found</body></html>\n")
    (root / "garbage.pkl").write_bytes(bytes(range(1, 256)) * 4)
    (root / "cut.pkl").write_bytes(pickle.dumps({"model": {"a": 1}})[:-5])
    return root


@pytest.mark.parametrize("name,message", [
    ("truncated.pth", "truncated or corrupt zip checkpoint"),
    ("empty.pth", "the checkpoint file is empty (0 bytes)"),
    ("page.pth", "a text file (starts with b'<html><body>'), not a torch.save / pickle checkpoint"),
    ("garbage.pkl", "not a checkpoint (starts with b'\\x01\\x02"),
    ("cut.pkl", "truncated or corrupt pickle checkpoint"),
])
def test_unreadable_checkpoints_are_one_line_errors(broken_files, name, message):
    path = str(broken_files / name)
    with pytest.raises(BackboneLoadError) as e:
        convert_checkpoint(path)
    assert str(e.value).startswith(f"{path}: ") and message in str(e.value) and "\n" not in str(e.value)
    r = subprocess.run([sys.executable, os.path.join(REPO, "tools", "convert_backbone.py"), path,
                        str(broken_files / "o.pkl")], capture_output=True, text=True,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip().splitlines()[-1] == f"error: {e.value}"
