"""Open-vocabulary classifier and region-phrase contrastive loss, against hand computations."""
import math

import pytest
import torch

from alpseg.modeling.open_vocab import OpenVocabClassifier, region_phrase_contrastive_loss


def _nll(row, target):
    """-log softmax(row)[target], by hand."""
    return -(row[target] - math.log(sum(math.exp(v) for v in row)))


def test_contrastive_loss_two_phrases_hand_computed():
    # Columns: phrase "dog", phrase "cat", background (logit 0 = cosine with the zero vector).
    rows = [[2.0, -1.0, 0.0], [0.5, 1.5, 0.0], [-3.0, 1.0, 0.0], [0.2, 0.4, 0.0]]
    targets = [0, 1, 2, 2]  # two foreground regions, two background regions
    alpha = 0.1
    expected = (_nll(rows[0], 0) + _nll(rows[1], 1) + alpha * (_nll(rows[2], 2) + _nll(rows[3], 2))) / 2
    loss = region_phrase_contrastive_loss(torch.tensor(rows), torch.tensor(targets), bg_alpha=alpha)
    assert loss.item() == pytest.approx(expected, rel=1e-6)

    # alpha scales only the background terms: alpha = 1 adds exactly the unscaled background part.
    loss1 = region_phrase_contrastive_loss(torch.tensor(rows), torch.tensor(targets), bg_alpha=1.0)
    assert (loss1 - loss).item() == pytest.approx(0.9 * (_nll(rows[2], 2) + _nll(rows[3], 2)) / 2, rel=1e-6)

    # Explicit normalizer and ignored regions (-1).
    loss_n = region_phrase_contrastive_loss(
        torch.tensor(rows), torch.tensor([0, -1, 2, -1]), bg_alpha=alpha, normalizer=4.0
    )
    assert loss_n.item() == pytest.approx((_nll(rows[0], 0) + alpha * _nll(rows[2], 2)) / 4, rel=1e-6)


def test_contrastive_loss_background_only_and_bad_targets():
    rows = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    loss = region_phrase_contrastive_loss(rows, torch.tensor([1, 1]), bg_alpha=0.1)
    expected = 0.1 * (_nll([1.0, 0.0], 1) + _nll([-1.0, 0.0], 1)) / 1  # normalizer = max(#fg, 1)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError):
        region_phrase_contrastive_loss(rows, torch.tensor([2, 0]))


def test_classifier_logits_are_cosine_over_tau_with_zero_background():
    torch.manual_seed(0)
    clf = OpenVocabClassifier(in_channels=6, embed_dim=4, temperature=0.01)
    text = torch.randn(3, 4)
    x = torch.randn(5, 6)
    logits = clf(x, text)
    proj = x @ clf.proj.weight.t() + clf.proj.bias
    cos = torch.nn.functional.cosine_similarity(proj[:, None, :], text[None, :, :], dim=-1)
    assert logits.shape == (5, 4)
    torch.testing.assert_close(logits[:, :3], cos / 0.01, rtol=1e-4, atol=1e-4)
    assert torch.all(logits[:, 3] == 0)

    # Dense (N, C, H, W) input: the same weights act as a 1x1 conv, output channels-last.
    dense = torch.randn(2, 6, 3, 5)
    out = clf(dense, text)
    assert out.shape == (2, 3, 5, 4)
    flat = dense.permute(0, 2, 3, 1).reshape(-1, 6)
    torch.testing.assert_close(out.reshape(-1, 4), clf(flat, text), rtol=1e-5, atol=1e-4)


def test_classifier_prior_bias_only_on_foreground():
    clf = OpenVocabClassifier(in_channels=3, embed_dim=2, temperature=0.5, fg_bias_prior=0.01)
    nobias = OpenVocabClassifier(in_channels=3, embed_dim=2, temperature=0.5)
    nobias.load_state_dict({k: v for k, v in clf.state_dict().items() if k != "fg_bias"})
    x, text = torch.randn(4, 3), torch.randn(2, 2)
    diff = clf(x, text) - nobias(x, text)
    torch.testing.assert_close(diff[:, :2], torch.full((4, 2), math.log(0.01 / 0.99)))
    assert torch.all(diff[:, 2] == 0)
