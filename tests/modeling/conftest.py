"""Fixtures of the modeling tests: a tiny FCOS-MO config and a small phrase bank."""
import pytest

from alpseg.testing import TEST_EMBED_DIM, TEST_PHRASES, tiny_fcos_mo_cfg, write_random_phrase_bank


@pytest.fixture
def bank_path(tmp_path):
    """A real PhraseBank file with random unit rows, made for the tiny config's encoder and prompts."""
    return write_random_phrase_bank(str(tmp_path / "bank.npz"), TEST_PHRASES, TEST_EMBED_DIM, "vild")


@pytest.fixture
def tiny_cfg(bank_path):
    return tiny_fcos_mo_cfg(bank_path)
