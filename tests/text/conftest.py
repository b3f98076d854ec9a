"""Fixtures of the text tests: a tiny open_clip architecture (registered once per session) so that
encoder and bank tests run in milliseconds, and a counting wrapper around an encoder."""
import json

import pytest

TINY_MODEL = "alpseg-tiny-test-clip"
TINY_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """Name of a 2-layer, 32-wide CLIP text tower (same tokenizer and structure as ViT-B-32)."""
    import open_clip

    folder = tmp_path_factory.mktemp("open_clip_configs")
    (folder / f"{TINY_MODEL}.json").write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(folder)
    assert TINY_MODEL in open_clip.list_models()
    return TINY_MODEL


class CountingEncoder:
    """Wraps a ``PhraseEncoder`` and records the phrase lists it is asked to encode."""

    def __init__(self, encoder, fail_on_call=None):
        self.inner = encoder
        self.calls = []
        self.fail_on_call = fail_on_call
        self.encoder_name = encoder.encoder_name
        self.prompts = encoder.prompts
        self.batch_size = encoder.batch_size
        self.embed_dim = encoder.embed_dim

    def encode(self, phrases, progress=False):
        self.calls.append(list(phrases))
        if self.fail_on_call is not None and len(self.calls) == self.fail_on_call:
            raise KeyboardInterrupt("simulated interruption")
        return self.inner.encode(phrases)

    @property
    def encoded(self):
        return [p for call in self.calls for p in call]


@pytest.fixture
def tiny_encoder(tiny_model):
    from alpseg.text.encoder import PhraseEncoder

    return PhraseEncoder(tiny_model, "none", "vild", device="cpu", batch_size=2)


@pytest.fixture
def counting():
    """``counting(encoder, fail_on_call=None)`` -> a ``CountingEncoder`` around ``encoder``."""
    return CountingEncoder
