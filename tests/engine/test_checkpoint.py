"""AlpsegCheckpointer: atomic saves, one-line errors for unreadable files, the weight-loading policy,
and FCOS-MO's EMA loss normaliser carried by checkpoints."""
import os
import pickle

import pytest
import torch
from torch import nn

from alpseg.engine.checkpoint import AlpsegCheckpointer, CheckpointError
from alpseg.modeling.ema import PersistentEMAMixin


class Bottom(nn.Module):
    def __init__(self, width=4):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3)
        self.norm = nn.BatchNorm2d(width)
        self.res = nn.Conv2d(width, width, 1)


class Backbone(nn.Module):
    def __init__(self, width=4):
        super().__init__()
        self.bottom_up = Bottom(width)
        self.fpn = nn.Conv2d(width, 2, 1)


class Net(PersistentEMAMixin, nn.Module):
    def __init__(self, width=4):
        super().__init__()
        self.backbone = Backbone(width)
        self.head = nn.Linear(2, 3)


def _save(path, state):
    torch.save({"model": state}, path)
    return str(path)


def _load(path, **kw):
    model = Net()
    ck = AlpsegCheckpointer(model, **kw)
    ck.load(str(path))
    return model, ck.last_report


def test_full_load_reports_counts_and_loads_the_values(tmp_path):
    src = Net()
    nn.init.constant_(src.backbone.bottom_up.conv.weight, 0.25)
    model, report = _load(_save(tmp_path / "a.pth", src.state_dict()))
    assert torch.equal(model.backbone.bottom_up.conv.weight, src.backbone.bottom_up.conv.weight)
    # 12 tensors without BatchNorm's num_batches_tracked; 8 in the backbone's bottom_up
    assert (report.matched, report.total, report.missing, report.unexpected) == (12, 12, 0, 0)
    assert (report.backbone_matched, report.backbone_total) == (8, 8)


def test_backbone_only_weights_load_and_a_partial_backbone_fails(tmp_path):
    bottom = {k: v for k, v in Net().state_dict().items() if k.startswith("backbone.bottom_up.")}
    model, report = _load(_save(tmp_path / "b.pth", bottom))
    assert (report.matched, report.missing, report.backbone_matched) == (8, 4, 8)
    half = {k: v for k, v in bottom.items() if ".conv." in k or ".norm." in k}  # 6 of 8
    with pytest.raises(CheckpointError, match=r"only 6 of 8 backbone tensors matched \(75% < .*90%\)"):
        _load(_save(tmp_path / "c.pth", half))
    _, report = _load(tmp_path / "c.pth", min_backbone_fraction=0.7)
    assert report.backbone_matched == 6
    _, report = _load(tmp_path / "c.pth", allow_partial=True)
    assert report.backbone_matched == 6


def test_foreign_weights_and_other_shapes_fail(tmp_path):
    with pytest.raises(CheckpointError, match="matches none of the model's 12 tensors"):
        _load(_save(tmp_path / "r.pth", {"conv1.weight": torch.zeros(3), "fc.bias": torch.zeros(2)}))
    wide = Net(width=6).state_dict()
    with pytest.raises(CheckpointError, match=r"tensors have another shape .*LOAD_ALLOW_PARTIAL"):
        _load(_save(tmp_path / "w.pth", wide))
    _, report = _load(tmp_path / "w.pth", allow_partial=True)  # on purpose: the shape-compatible rest
    assert report.mismatched and report.matched == 12 - len(report.mismatched)


@pytest.mark.parametrize("content, match", [
    (b"", "is empty"),
    (b"this is a text file, not weights\n", "cannot be read"),
    ("truncated", "cannot be read"),
])
def test_unreadable_files_are_one_line_errors(tmp_path, content, match):
    path = tmp_path / "bad.pth"
    if content == "truncated":
        _save(path, Net().state_dict())
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match) as e:
        _load(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)
    with pytest.raises(CheckpointError, match="does not exist"):
        _load(tmp_path / "nope.pth")


def test_files_without_tensors_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="no model weights"):
        _load(_save(tmp_path / "empty.pth", {}))
    path = tmp_path / "x.pkl"
    with open(path, "wb") as f:
        pickle.dump({"model": {"a": "text"}}, f)
    with pytest.raises(CheckpointError, match="does not hold tensors keyed by name") as e:
        _load(path)
    assert "\n" not in str(e.value)


def test_saves_are_atomic_and_carry_the_ema_normalisers(tmp_path):
    model = Net()
    assert model._ema_update("loss_normalizer", 100, 300) == pytest.approx(280.0)
    assert model._ema_update("loss_normalizer/coco", 10, 300) == pytest.approx(271.0)  # any name, made on use
    ck = AlpsegCheckpointer(model, str(tmp_path))
    ck.save("model_0000001")
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000001.pth"]  # no temp files left
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"
    fresh = Net()
    assert fresh.ema_values() == {}
    AlpsegCheckpointer(fresh, str(tmp_path)).resume_or_load("", resume=True)
    assert fresh.ema_values() == model.ema_values() == {"loss_normalizer": 280.0, "loss_normalizer/coco": 271.0}
    # the resumed EMA continues exactly: 280 * 0.9 + 50 * 0.1
    assert fresh._ema_update("loss_normalizer", 50, 300) == 280.0 * 0.9 + 50 * (1 - 0.9)
