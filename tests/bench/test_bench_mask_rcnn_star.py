"""bench/bench_mask_rcnn_star.py shares the stock model's detector weights only where they fit."""
import os
from types import SimpleNamespace

import pytest
import torch
from torch import nn

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(REPO_ROOT, "bench"))
    import bench_mask_rcnn_star
    return bench_mask_rcnn_star


def _model(box_head: nn.Module, seed: int) -> SimpleNamespace:
    torch.manual_seed(seed)
    return SimpleNamespace(backbone=nn.Conv2d(3, 4, 3), proposal_generator=nn.Linear(4, 2),
                           roi_heads=SimpleNamespace(box_head=box_head))


def test_same_shapes_needs_equal_keys_and_shapes(bench):
    assert bench._same_shapes(nn.Linear(4, 2), nn.Linear(4, 2))
    assert not bench._same_shapes(nn.Linear(4, 2), nn.Linear(4, 3))  # same keys, other shapes
    assert not bench._same_shapes(nn.Linear(4, 2), nn.Sequential(nn.Linear(4, 2)))  # other keys


def test_box_head_copied_only_into_the_same_architecture(bench):
    stock = _model(nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8)), seed=0)  # "2 fc"
    two_fc = _model(nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8)), seed=1)
    conv_fc = _model(nn.Sequential(nn.Conv2d(8, 8, 3), nn.Linear(8, 8)), seed=2)  # "4conv1fc"-like
    own = {k: v.clone() for k, v in conv_fc.roi_heads.box_head.state_dict().items()}
    bench._share_detector_weights({"d2_mask_rcnn": stock, "a": two_fc, "b": conv_fc})
    for m in (two_fc, conv_fc):  # backbone and RPN always come from the stock model
        for part in ("backbone", "proposal_generator"):
            for k, v in getattr(stock, part).state_dict().items():
                assert torch.equal(getattr(m, part).state_dict()[k], v)
    for k, v in stock.roi_heads.box_head.state_dict().items():
        assert torch.equal(two_fc.roi_heads.box_head.state_dict()[k], v)
    for k, v in conv_fc.roi_heads.box_head.state_dict().items():  # kept its own weights, no error
        assert torch.equal(v, own[k])
    assert not torch.equal(conv_fc.roi_heads.box_head.state_dict()["1.weight"],
                           stock.roi_heads.box_head.state_dict()["1.weight"])
