import os

import numpy as np
import pytest
import torch

from alpseg.text.bank import PhraseBank, update_bank_file
from alpseg.text.encoder import PhraseEncoder


def unit_rows(n, d, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_save_load_roundtrip_is_exact_and_atomic(tmp_path):
    bank = PhraseBank(["dog", "traffic light"], unit_rows(2, 8), "open_clip:X:none(seed=0)", "vild")
    path = str(tmp_path / "bank.npz")
    bank.save(path)
    assert os.listdir(tmp_path) == ["bank.npz"]  # no temporary file left behind
    back = PhraseBank.load(path)
    assert back.phrases == ["dog", "traffic light"]
    assert back.embeddings.tobytes() == bank.embeddings.tobytes()
    assert (back.encoder, back.prompts, back.dim) == ("open_clip:X:none(seed=0)", "vild", 8)
    with np.load(path, allow_pickle=False) as raw:  # the documented layout (docs/phrase_bank.md), readable without pickle
        assert sorted(raw.files) == ["embeddings", "encoder", "phrases", "prompts"]


def test_lookup_order_normalization_and_missing():
    rows = unit_rows(3, 4)
    bank = PhraseBank(["dog", "traffic light", "cup or mug"], rows, "e", "vild")
    got = bank.lookup(["Traffic_Light", "dog", "cup/mug", "dog"])
    assert got.dtype == torch.float32 and got.shape == (4, 4)
    assert torch.equal(got, torch.from_numpy(rows[[1, 0, 2, 0]]))
    assert bank.lookup([]).shape == (0, 4)
    with pytest.raises(KeyError) as err:
        bank.lookup(["dog", "zebra crossing", "unicorn"])
    assert "'zebra crossing'" in str(err.value) and "'unicorn'" in str(err.value)
    assert "2 phrase(s)" in str(err.value)


def test_constructor_rejects_bad_banks():
    with pytest.raises(ValueError, match="unit-norm"):
        PhraseBank(["dog"], np.ones((1, 4), np.float32), "e", "vild")
    with pytest.raises(ValueError, match="duplicate"):
        PhraseBank(["dog", "dog"], unit_rows(2, 4), "e", "vild")
    with pytest.raises(ValueError, match="normalized"):
        PhraseBank(["Dog"], unit_rows(1, 4), "e", "vild")
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        PhraseBank(["dog", "cat"], unit_rows(1, 4), "e", "vild")
    with pytest.raises(ValueError, match="float32 or float16"):
        PhraseBank(["dog"], unit_rows(1, 4).astype(np.float64), "e", "vild")


def test_extension_encodes_only_new_phrases_and_keeps_old_rows(tmp_path, tiny_encoder, counting):
    path = str(tmp_path / "bank.npz")
    spy = counting(tiny_encoder)
    bank, added = update_bank_file(path, ["dog", "Apple", "dog", "traffic_light"], spy, progress=False)
    assert added == ["dog", "apple", "traffic light"]
    assert spy.encoded == ["dog", "apple", "traffic light"]
    old = PhraseBank.load(path)
    np.testing.assert_allclose(np.linalg.norm(old.embeddings, axis=1), 1.0, atol=1e-6)

    spy = counting(tiny_encoder)
    bank, added = update_bank_file(path, ["cat", "dog", "apple", "zebra", "Cat"], spy, progress=False)
    assert added == ["cat", "zebra"]
    assert spy.encoded == ["cat", "zebra"]  # old phrases never re-encoded
    new = PhraseBank.load(path)
    assert new.phrases == ["dog", "apple", "traffic light", "cat", "zebra"]
    assert new.embeddings[:3].tobytes() == old.embeddings.tobytes()  # bit-identical old rows
    np.testing.assert_allclose(new.embeddings[3:], tiny_encoder.encode(["cat", "zebra"]), atol=1e-6)

    spy = counting(tiny_encoder)
    mtime = os.stat(path).st_mtime_ns
    _, added = update_bank_file(path, ["zebra", "dog"], spy, progress=False)
    assert added == [] and spy.calls == [] and os.stat(path).st_mtime_ns == mtime


def test_interrupted_run_resumes(tmp_path, tiny_encoder, counting):
    path = str(tmp_path / "bank.npz")
    phrases = ["a%d" % i for i in range(7)]  # batch size 2 -> 4 encoder calls
    failing = counting(tiny_encoder, fail_on_call=3)
    with pytest.raises(KeyboardInterrupt):
        update_bank_file(path, phrases, failing, progress=False, checkpoint_interval_s=0.0)
    saved = PhraseBank.load(path)
    assert saved.phrases == phrases[:4]  # the two finished batches were saved
    spy = counting(tiny_encoder)
    bank, added = update_bank_file(path, phrases, spy, progress=False)
    assert added == phrases[4:] and spy.encoded == phrases[4:]
    assert bank.embeddings[:4].tobytes() == saved.embeddings.tobytes()


def test_encoder_or_prompt_mismatch_is_an_error(tmp_path, tiny_model, tiny_encoder, counting):
    path = str(tmp_path / "bank.npz")
    update_bank_file(path, ["dog"], tiny_encoder, progress=False)
    single = counting(PhraseEncoder(tiny_model, "none", "single", device="cpu"))
    with pytest.raises(ValueError, match="cannot be mixed"):
        update_bank_file(path, ["cat"], single, progress=False)
    other_seed = counting(PhraseEncoder(tiny_model, "none", "vild", device="cpu", seed=3))
    with pytest.raises(ValueError, match="none\\(seed=3\\)"):
        PhraseBank.load(path).extend(["cat"], other_seed)
    assert single.calls == [] and other_seed.calls == []  # checked before any encoding
    assert PhraseBank.load(path).phrases == ["dog"]


def test_single_template_bank_differs_from_vild_bank(tmp_path, tiny_model, tiny_encoder):
    phrases = ["dog", "apple", "traffic light"]
    vild, _ = update_bank_file(str(tmp_path / "vild.npz"), phrases, tiny_encoder, progress=False)
    single_enc = PhraseEncoder(tiny_model, "none", "single", device="cpu")
    single, _ = update_bank_file(str(tmp_path / "single.npz"), phrases, single_enc, progress=False)
    assert (vild.prompts, single.prompts) == ("vild", "single")
    diff = np.abs(vild.embeddings - single.embeddings).max(axis=1)
    assert (diff > 1e-3).all()


def test_float16_bank(tmp_path, tiny_encoder):
    path = str(tmp_path / "half.npz")
    bank, _ = update_bank_file(path, ["dog"], tiny_encoder, dtype="float16", progress=False)
    bank, _ = update_bank_file(path, ["cat"], tiny_encoder, dtype="float32", progress=False)
    assert bank.embeddings.dtype == np.float16  # an existing bank keeps its dtype
    got = bank.lookup(["cat"])
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy()[0], tiny_encoder.encode(["cat"])[0], atol=2e-3)
