"""tools/embed_phrases.py end to end (in-process), with the tiny text tower and random weights."""
import importlib.util
import json
import os

import numpy as np
import pytest

from alpseg.text.bank import PhraseBank

TOOL = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "embed_phrases.py")


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("embed_phrases_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_creates_then_extends(tool, tiny_model, tiny_encoder, tmp_path, capsys):
    words = tmp_path / "words.txt"
    words.write_text("Dog\ncat\n_\n\n")
    out = str(tmp_path / "bank.npz")
    common = ["--output", out, "--model", tiny_model, "--pretrained", "none", "--device", "cpu",
              "--batch-size", "2"]
    assert tool.main(["--phrases", str(words)] + common) == 0
    captured = capsys.readouterr()
    assert "skipped 1 phrases" in captured.err and "2 newly encoded" in captured.out
    first = PhraseBank.load(out)
    assert first.phrases == ["dog", "cat"] and first.prompts == "vild"
    assert first.encoder == f"open_clip:{tiny_model}:none(seed=0)"
    np.testing.assert_allclose(first.embeddings, tiny_encoder.encode(["dog", "cat"]), atol=1e-6)

    alps = tmp_path / "alps.json"
    alps.write_text(json.dumps({"phrases": ["cat", "red car", "dog"]}))
    assert tool.main(["--phrases", str(alps)] + common) == 0
    assert "1 newly encoded, 2 already present" in capsys.readouterr().out
    second = PhraseBank.load(out)
    assert second.phrases == ["dog", "cat", "red car"]
    assert second.embeddings[:2].tobytes() == first.embeddings.tobytes()

    with pytest.raises(ValueError, match="cannot be mixed"):
        tool.main(["--phrases", "zebra", "--prompts", "single"] + common)
