"""Fixtures of the modeling tests: a tiny FCOS-MO config and a small phrase bank."""
import numpy as np
import pytest

from alpseg.text.bank import PhraseBank
from alpseg.text.encoder import encoder_id
from fcos_mo_batches import EMBED_DIM, PHRASES, tiny_fcos_mo_cfg


@pytest.fixture
def bank_path(tmp_path):
    """A real PhraseBank file with random unit rows, made for the tiny config's encoder and prompts."""
    rng = np.random.RandomState(0)
    emb = rng.randn(len(PHRASES), EMBED_DIM).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    path = str(tmp_path / "bank.npz")
    PhraseBank(PHRASES, emb, encoder_id("ViT-B-32", "none"), "vild").save(path)
    return path


@pytest.fixture
def tiny_cfg(bank_path):
    return tiny_fcos_mo_cfg(bank_path)
