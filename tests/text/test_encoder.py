import numpy as np
import pytest
import torch
import torch.nn.functional as F

from alpseg.text import encoder as enc_mod
from alpseg.text.encoder import PhraseEncoder, encode_phrases, encoder_id, load_text_model
from alpseg.text.prompts import expand_prompts

PHRASES = ["apple", "dog", "small white dog", "traffic light"]


def reference_embedding(model, tokenizer, phrase, prompts):
    """Independent ViLD average: full-length (77-token) ``encode_text`` of every sentence."""
    with torch.no_grad():
        feats = model.encode_text(tokenizer(expand_prompts(phrase, prompts)))
    mean = F.normalize(feats.float(), dim=-1).mean(dim=0)
    return F.normalize(mean, dim=0).numpy()


@pytest.mark.parametrize("prompts", ["vild", "single"])
def test_embeddings_equal_reference_and_are_unit_norm(tiny_encoder, tiny_model, prompts):
    encoder = PhraseEncoder(tiny_model, "none", prompts, device="cpu", batch_size=3)
    assert encoder.truncate  # the fast path is the one under test
    got = encoder.encode(PHRASES)
    assert got.shape == (4, 16) and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    for phrase, row in zip(PHRASES, got):
        ref = reference_embedding(encoder.model, encoder.tokenizer, phrase, prompts)
        np.testing.assert_allclose(row, ref, atol=1e-5)


def test_truncated_forward_equals_encode_text(tiny_encoder):
    sentences = expand_prompts("small white dog") + ["x", "a much longer sentence " * 5]
    fast = tiny_encoder.encode_sentences(sentences)
    tokens = tiny_encoder.tokenizer(sentences)
    with torch.no_grad():
        full = tiny_encoder.model.encode_text(tokens)
    torch.testing.assert_close(fast, full, atol=1e-5, rtol=1e-5)


def test_single_template_differs_from_vild(tiny_model):
    vild = PhraseEncoder(tiny_model, "none", "vild", device="cpu").encode(PHRASES)
    single = PhraseEncoder(tiny_model, "none", "single", device="cpu").encode(PHRASES)
    assert np.abs(vild - single).max() > 1e-3


def test_batch_size_does_not_change_embeddings(tiny_model):
    a = PhraseEncoder(tiny_model, "none", device="cpu", batch_size=1).encode(PHRASES)
    b = PhraseEncoder(tiny_model, "none", device="cpu", batch_size=4).encode(PHRASES)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_random_weights_reproducible_across_loads(tiny_model):
    first = PhraseEncoder(tiny_model, "none", device="cpu").encode(PHRASES)
    enc_mod._MODEL_CACHE.clear()
    torch.manual_seed(1234)  # the caller's RNG state must not matter
    second = PhraseEncoder(tiny_model, "none", device="cpu").encode(PHRASES)
    assert first.tobytes() == second.tobytes()
    enc_mod._MODEL_CACHE.clear()
    other_seed = PhraseEncoder(tiny_model, "none", device="cpu", seed=1).encode(PHRASES)
    assert np.abs(first - other_seed).max() > 1e-3


def test_loading_random_weights_leaves_global_rng_alone(tiny_model):
    enc_mod._MODEL_CACHE.clear()
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    load_text_model(tiny_model, "none", "cpu")
    assert torch.equal(torch.rand(3), expected)


@pytest.fixture(scope="module")
def vitb32_none():
    """ViT-B-32 with seeded random weights and one template (fast), loaded once for this module."""
    return PhraseEncoder("ViT-B-32", "none", "single", device="cpu", batch_size=2)


def test_vitb32_random_weights(vitb32_none):
    """The real default architecture: 512-d unit rows, and the truncated forward equals encode_text.

    Reproducibility across loads is checked on the tiny model above (same code path), to load
    ViT-B-32 only once.
    """
    assert vitb32_none.embed_dim == 512 and vitb32_none.truncate
    assert vitb32_none.encoder_name == "open_clip:ViT-B-32:none(seed=0)"
    got = vitb32_none.encode(["apple", "traffic light"])
    assert got.shape == (2, 512)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    for phrase, row in zip(["apple", "traffic light"], got):
        ref = reference_embedding(vitb32_none.model, vitb32_none.tokenizer, phrase, "single")
        np.testing.assert_allclose(row, ref, atol=1e-5)


def test_encode_phrases_function(tiny_model, tiny_encoder):
    got = encode_phrases(PHRASES, tiny_model, "none", "vild", "cpu", 2)
    np.testing.assert_array_equal(got, tiny_encoder.encode(PHRASES))
    assert tiny_encoder.encode([]).shape == (0, 16)


def test_encoder_id():
    assert encoder_id("ViT-B-32", "openai") == "open_clip:ViT-B-32:openai"
    assert encoder_id("ViT-B-32", "None") == "open_clip:ViT-B-32:none(seed=0)"
    assert encoder_id("ViT-B-32", "/ckpts/clip/b32.pt") == "open_clip:ViT-B-32:file:b32.pt"
    with pytest.raises(ValueError):
        encoder_id("ViT-B-32", "")


def test_missing_checkpoint_file_says_how_to_get_weights(tiny_model, tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        PhraseEncoder(tiny_model, str(tmp_path / "nowhere.pt"), device="cpu")
    assert "--pretrained none" in str(err.value) and "pretrained='openai'" in str(err.value)


def test_unknown_tag_and_model():
    with pytest.raises(ValueError, match="known tags"):
        PhraseEncoder("ViT-B-32", "not-a-tag", device="cpu")
    with pytest.raises(ValueError, match="unknown open_clip model"):
        PhraseEncoder("ViT-Q-99", "none", device="cpu")


def test_failed_download_is_an_error_not_random_weights(monkeypatch):
    import open_clip

    def offline(*args, **kwargs):
        assert kwargs.get("pretrained") == "openai" and kwargs.get("require_pretrained")
        raise RuntimeError("Failed to download weights for tag 'openai'")

    monkeypatch.setattr(open_clip, "create_model", offline)
    with pytest.raises(RuntimeError) as err:
        PhraseEncoder("ViT-B-32", "openai", device="cpu")
    msg = str(err.value)
    assert "Failed to download" in msg and "--pretrained none" in msg and "huggingface" in msg


def test_local_checkpoint_loads_those_weights(tiny_model, tiny_encoder, tmp_path):
    """A checkpoint path gives the saved weights (here: a copy of the seed-0 random model)."""
    import open_clip

    enc_mod._MODEL_CACHE.clear()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        full = open_clip.create_model(tiny_model, pretrained=None)
    path = tmp_path / "tiny.pt"
    torch.save({"state_dict": full.state_dict()}, path)
    from_file = PhraseEncoder(tiny_model, str(path), device="cpu")
    assert from_file.encoder_name == "open_clip:%s:file:tiny.pt" % tiny_model
    loaded = from_file.model.state_dict()
    assert loaded.keys() and all(torch.equal(v, full.state_dict()[k]) for k, v in loaded.items())
    np.testing.assert_allclose(from_file.encode(PHRASES), tiny_encoder.encode(PHRASES), atol=1e-6)


TRICKY = ["apple", "dog", "small white dog", "close-up lens", "kid's bike", "t-shirt", "4x4 truck", "r2d2",
          "x", "umbrella", "hour glass", "boy (child)", "café table", "mom's", "a&amp;w", "st.", "dog.",
          "long " * 30 + "phrase"]


@pytest.mark.parametrize("prompts", ["vild", "single"])
def test_prompt_tokenizer_equals_sentence_tokenization(tiny_encoder, prompts):
    import open_clip

    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    fast = enc_mod.PromptTokenizer(tokenizer, prompts)
    assert fast.fast
    expected = torch.cat([tokenizer(expand_prompts(p, prompts)) for p in TRICKY])
    assert torch.equal(fast(TRICKY), expected)
    assert len(fast._parts) == 2  # template parts tokenized once per article


def test_prompt_tokenizer_falls_back_when_a_template_glues_to_the_name(monkeypatch):
    import open_clip

    from alpseg.text import prompts as prompts_mod

    monkeypatch.setitem(prompts_mod.PROMPT_SETS, "glued", {"templates": ("{}s are here.", "x{}"), "this_is": False})
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    fast = enc_mod.PromptTokenizer(tokenizer, "glued")
    expected = torch.cat([tokenizer(expand_prompts(p, "glued")) for p in ["dog", "bus"]])
    assert torch.equal(fast(["dog", "bus"]), expected)
    assert list(fast._parts.values()) == [None]  # detected as unsafe, tokenized sentence-wise


def test_long_phrases_are_counted_and_warned_about(tiny_encoder, caplog):
    long_a = "red " * 80 + "apple"  # more than 77 tokens in every prompt
    long_b = "blue " * 30 + "bird"  # 32 tokens: fits
    with caplog.at_level("WARNING", logger="alpseg.text.encoder"):
        emb = tiny_encoder.encode(["dog", long_a, long_b, long_a])
    assert tiny_encoder.truncated_phrases == [long_a]
    assert "1 of 4 phrases are longer than the text encoder's 77-token context" in caplog.text
    np.testing.assert_array_equal(emb[1], emb[3])  # duplicates of one phrase are fine
    # the truncated embedding is that of the first 77 tokens: the tail cannot change it
    tokens, truncated = tiny_encoder.prompt_tokenizer.tokenize([long_a, long_b])
    assert truncated == [True, False] and tokens[0, -1].item() == tiny_encoder.tokenizer.eot_token_id


def test_phrases_equal_after_truncation_are_an_error(tiny_encoder):
    head = "big " * 80
    tiny_encoder.encode([head + "cat"])
    with pytest.raises(ValueError, match="identical in their first 77 tokens.*shorten or reword"):
        tiny_encoder.encode([head + "dog"])  # also across calls (a bank extended batch by batch)
    with pytest.raises(ValueError, match="identical in their first 77 tokens"):
        tiny_encoder.encode(["x", head + "fish", head + "owl"])  # and within one call


def test_truncation_detected_on_the_sentence_by_sentence_path(tiny_model):
    encoder = PhraseEncoder(tiny_model, "none", "single", device="cpu")
    phrase = "café " * 80  # not a plain ASCII name: tokenized sentence by sentence
    _, truncated = encoder.prompt_tokenizer.tokenize([phrase, "café"])
    assert truncated == [True, False]
