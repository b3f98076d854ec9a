"""SOLVER.CLIP_GRADIENTS.CLIP_TYPE "full_model": one joint norm for all gradients, direction kept."""
import pytest
import torch

from alpseg.engine.trainer import clip_full_model_gradients


def test_full_model_clipping_scales_all_gradients_together():
    a = torch.nn.Parameter(torch.zeros(2))
    b = torch.nn.Parameter(torch.zeros(1))
    opt = clip_full_model_gradients(torch.optim.SGD([a, b], lr=1.0), max_norm=1.0)
    a.grad = torch.tensor([6.0, 0.0])
    b.grad = torch.tensor([8.0])  # joint norm 10 -> scaled by 1/10
    opt.step()
    assert torch.allclose(a.detach(), torch.tensor([-0.6, 0.0])) and torch.allclose(b.detach(), torch.tensor([-0.8]))
    a.grad = torch.tensor([0.3, 0.0])
    b.grad = torch.tensor([0.4])  # norm 0.5 <= 1: unchanged
    opt.step()
    assert torch.allclose(a.detach(), torch.tensor([-0.9, 0.0])) and torch.allclose(b.detach(), torch.tensor([-1.2]))
    assert isinstance(opt, torch.optim.SGD) and opt.state_dict()["param_groups"][0]["lr"] == 1.0


def test_full_model_clipping_needs_a_positive_norm():
    with pytest.raises(ValueError, match="CLIP_VALUE must be > 0"):
        clip_full_model_gradients(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), max_norm=0.0)
