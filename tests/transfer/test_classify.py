"""Linear probe and iNat fine-tuning: schedules, frozen trunk, reported accuracy, exact resume."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from PIL import Image

from alpseg.transfer import classify
from alpseg.transfer.classify import ClassificationSettings, image_folder_samples, inat_samples, lr_factor
from alpseg.transfer.images import eval_transform
from alpseg.transfer.inat import inat_settings, run_inat
from alpseg.transfer.linear_probe import linear_probe_settings, run_linear_probe

TINY = dict(epochs=2, batch_size=8, crop=32, resize=36, num_workers=0, eval_batch_size=16, device="cpu")


def test_lr_schedules():
    s = ClassificationSettings(epochs=10, schedule="cosine")
    assert lr_factor(0, 5, s) == 1.0
    assert lr_factor(25, 5, s) == pytest.approx(0.5)
    assert lr_factor(49, 5, s) == pytest.approx(0.5 * (1 + math.cos(math.pi * 49 / 50)))
    st = inat_settings()
    assert st.base_lr == 0.025 and st.weight_decay == 1e-4
    assert [lr_factor(e * 10, 10, st) for e in (0, 69, 70, 89, 90, 99)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    lp = linear_probe_settings()
    assert (lp.base_lr, lp.weight_decay, lp.epochs, lp.schedule) == (0.3, 0.0, 100, "cosine")


@pytest.fixture(scope="module")
def probe(mini_root, tv_weights, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("probe"))
    return out, run_linear_probe(tv_weights, os.path.join(mini_root, "imagenet"), out, linear_probe_settings(**TINY))


def test_linear_probe_accuracy_is_what_the_saved_head_gives(probe, mini_root, resnet50_tv, tv_weights):
    out, result = probe
    state = torch.load(os.path.join(out, "last.pth"), weights_only=True)
    # the trunk did not move
    for k, v in tv_weights.items():
        assert torch.equal(state["model"]["trunk.trunk." + k], v), k
    # independent: torchvision ResNet-50 features -> saved linear layer -> top-1
    paths, labels, classes = image_folder_samples(os.path.join(mini_root, "imagenet", "val"))
    assert classes == ["apple", "banana", "cake", "clock"] and result["num_classes"] == 4
    tf = eval_transform(36, 32)
    x = torch.stack([tf(Image.open(p).convert("RGB")) for p in paths])
    m = resnet50_tv
    with torch.no_grad():
        f = m.layer4(m.layer3(m.layer2(m.layer1(m.maxpool(m.relu(m.bn1(m.conv1(x)))))))).mean(dim=(2, 3))
        logits = f @ state["model"]["head.weight"].T + state["model"]["head.bias"]
    top1 = 100 * float((logits.argmax(1) == torch.tensor(labels)).float().mean())
    assert result["metrics"]["top1"] == pytest.approx(top1, abs=1e-6)
    assert result["metrics"]["top5"] == 100.0  # 4 classes
    # lr: 0.3 * 8 / 256, cosine over 2 epochs x 4 iterations, last iteration is 7
    assert result["lr"] == pytest.approx(0.3 * 8 / 256)
    assert result["history"][-1]["lr_end"] == pytest.approx(result["lr"] * 0.5 * (1 + math.cos(math.pi * 7 / 8)))


def test_linear_probe_resume_equals_uninterrupted_run(probe, mini_root, tv_weights, tmp_path, monkeypatch):
    out, result = probe
    root = os.path.join(mini_root, "imagenet")

    def killed_in_epoch_2(iteration, iters_per_epoch, s):
        if iteration >= iters_per_epoch:
            raise KeyboardInterrupt
        return lr_factor(iteration, iters_per_epoch, s)

    with monkeypatch.context() as m:
        m.setattr(classify, "lr_factor", killed_in_epoch_2)
        with pytest.raises(KeyboardInterrupt):
            run_linear_probe(tv_weights, root, str(tmp_path), linear_probe_settings(**TINY))
    assert torch.load(os.path.join(tmp_path, "last.pth"), weights_only=True)["epoch"] == 1
    resumed = run_linear_probe(tv_weights, root, str(tmp_path), linear_probe_settings(**TINY))
    a = torch.load(os.path.join(out, "last.pth"), weights_only=True)["model"]
    b = torch.load(os.path.join(tmp_path, "last.pth"), weights_only=True)["model"]
    assert torch.equal(a["head.weight"], b["head.weight"]) and torch.equal(a["head.bias"], b["head.bias"])
    assert resumed["metrics"] == result["metrics"]


def test_inat_finetune_trains_the_trunk(mini_root, tv_weights, tmp_path):
    root = os.path.join(mini_root, "inat2018")
    paths, labels, classes = inat_samples(os.path.join(root, "train2018.json"), root)
    assert len(paths) == 32 and sorted(set(labels)) == [0, 1, 2, 3] and all(os.path.isfile(p) for p in paths)
    result = run_inat(tv_weights, root, str(tmp_path), inat_settings(**{**TINY, "epochs": 1}))
    assert 0 <= result["metrics"]["top1"] <= 100 and result["num_classes"] == 4
    state = torch.load(os.path.join(tmp_path, "last.pth"), weights_only=True)["model"]
    assert not torch.equal(state["trunk.trunk.res5.2.conv3.weight"], tv_weights["res5.2.conv3.weight"])
    assert "trunk.trunk.res2.0.conv1.norm.num_batches_tracked" in state  # trainable BN, not frozen
    assert np.isfinite(result["history"][0]["loss"])


def test_inat_rejects_unannotated_images(tmp_path):
    import json

    (tmp_path / "train2018.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 5}], "categories": [{"id": 5, "name": "x"}]}))
    with pytest.raises(ValueError, match="1 images without annotation"):
        inat_samples(str(tmp_path / "train2018.json"), str(tmp_path))
