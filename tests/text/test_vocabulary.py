import json

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from alpseg.config import get_cfg
from alpseg.text.bank import PhraseBank, load_bank_for_cfg, update_bank_file
from alpseg.text.vocabulary import build_vocabulary, load_test_vocabulary, read_phrase_source


@pytest.fixture
def registered_dataset():
    name = "alpseg_text_test_vocab"
    DatasetCatalog.register(name, lambda: [])
    MetadataCatalog.get(name).set(thing_classes=["Traffic_Light", "cup/mug", "apple"])
    yield name
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def test_comma_list():
    assert build_vocabulary("Dog, traffic_light ,cat,") == ["dog", "traffic light", "cat"]
    assert build_vocabulary("dog") == ["dog"]
    assert build_vocabulary("traffic_light,") == ["traffic light"]


def test_dataset_name_and_default(registered_dataset):
    expected = ["traffic light", "cup or mug", "apple"]
    assert build_vocabulary(registered_dataset) == expected
    assert build_vocabulary("", default_dataset=registered_dataset) == expected
    assert build_vocabulary("coco_2017_val")[:3] == ["person", "bicycle", "car"]  # detectron2 builtin
    with pytest.raises(ValueError, match="no test dataset"):
        build_vocabulary("")


def test_dataset_without_classes_is_an_error():
    name = "alpseg_text_test_noclasses"
    DatasetCatalog.register(name, lambda: [])
    try:
        with pytest.raises(ValueError, match="no thing_classes"):
            build_vocabulary(name)
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_text_file_and_alp_json(tmp_path):
    txt = tmp_path / "vocab.txt"
    txt.write_text("# classes\nDog\n\n  small white dog \ncup/mug\n")
    assert build_vocabulary(str(txt)) == ["dog", "small white dog", "cup or mug"]
    alps = tmp_path / "alps.json"
    alps.write_text(json.dumps({"images": [], "annotations": [], "phrases": ["red car", "tree"]}))
    assert read_phrase_source(str(alps)) == ["red car", "tree"]
    plain = tmp_path / "list.json"
    plain.write_text(json.dumps(["a", "b"]))
    assert read_phrase_source(str(plain)) == ["a", "b"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"annotations": []}))
    with pytest.raises(ValueError, match="phrases"):
        read_phrase_source(str(bad))


def test_bad_vocabularies(tmp_path):
    only_comments = tmp_path / "empty.txt"
    only_comments.write_text("# nothing\n\n")
    with pytest.raises(ValueError, match="empty"):
        build_vocabulary(str(only_comments))
    with pytest.raises(ValueError, match="both normalize"):
        build_vocabulary("traffic_light,Traffic Light")
    with pytest.raises(ValueError, match="empty after normalization"):
        build_vocabulary("dog,_")
    with pytest.raises(ValueError, match="did you mean.*coco_2017_val"):
        build_vocabulary("coco_2017_vall")
    with pytest.raises(ValueError, match="neither a registered dataset nor an existing file"):
        build_vocabulary(str(tmp_path / "missing.txt"))


def _cfg(tiny_model, bank_path, **overrides):
    cfg = get_cfg()
    ov = cfg.MODEL.OPEN_VOCAB
    ov.TEXT_ENCODER, ov.PRETRAINED, ov.PROMPTS, ov.EMBED_DIM = tiny_model, "none", "vild", 16
    ov.EMBEDDINGS = bank_path
    for k, v in overrides.items():
        setattr(ov, k, v)
    return cfg


def test_load_bank_for_cfg_checks_encoder_prompts_and_dim(tmp_path, tiny_model, tiny_encoder):
    path = str(tmp_path / "bank.npz")
    update_bank_file(path, ["dog", "cat"], tiny_encoder, progress=False)
    assert load_bank_for_cfg(_cfg(tiny_model, path)).phrases == ["dog", "cat"]
    for bad, match in [
        ({"PROMPTS": "single"}, "prompts"),
        ({"PRETRAINED": "openai"}, "encoder"),
        ({"TEXT_ENCODER": "ViT-B-32"}, "encoder"),
        ({"EMBED_DIM": 512}, "EMBED_DIM"),
        ({"EMBEDDINGS": ""}, "EMBEDDINGS is empty"),
    ]:
        with pytest.raises(ValueError, match=match):
            load_bank_for_cfg(_cfg(tiny_model, path, **bad))
    with pytest.raises(FileNotFoundError, match="embed_phrases"):
        load_bank_for_cfg(_cfg(tiny_model, str(tmp_path / "none.npz")))


def test_test_vocabulary_missing_phrases(tmp_path, tiny_model, tiny_encoder):
    path = str(tmp_path / "bank.npz")
    update_bank_file(path, ["dog", "cat"], tiny_encoder, progress=False)
    cfg = _cfg(tiny_model, path, TEST_VOCABULARY="dog,zebra,Cat")
    with pytest.raises(KeyError, match="'zebra'"):
        load_test_vocabulary(cfg)

    cfg.MODEL.OPEN_VOCAB.ENCODE_MISSING = True
    vocab = load_test_vocabulary(cfg)
    assert vocab.phrases == ("dog", "zebra", "cat")
    bank = PhraseBank.load(path)
    np.testing.assert_array_equal(vocab.embeddings[[0, 2]].numpy(), bank.embeddings)
    np.testing.assert_allclose(vocab.embeddings[1].numpy(), tiny_encoder.encode(["zebra"])[0], atol=1e-6)
    assert bank.phrases == ["dog", "cat"]  # the bank file is not modified at test time


def test_old_paths_re_export_the_vocabulary_names():
    """alpseg.text.bank and alpseg.modeling.vocabulary keep their old names for one release."""
    import alpseg.modeling.vocabulary as old_mixin
    import alpseg.modeling.vocabulary_mixin as mixin
    import alpseg.text.bank as bank
    import alpseg.text.vocabulary as vocabulary

    for name in ("Vocabulary", "build_vocabulary", "load_test_vocabulary", "read_phrase_source"):
        assert getattr(bank, name) is getattr(vocabulary, name)
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        bank.not_a_name
    for name in old_mixin.__all__:
        assert getattr(old_mixin, name) is getattr(mixin, name)
    assert set(old_mixin.__all__) == set(mixin.__all__)
