"""alpseg.testing: the helpers tests/ and bench/ share, and bench/'s use of them."""
import ast
import glob
import os

import numpy as np
import pytest
import torch

from alpseg.testing import (
    REPO_ROOT,
    TEST_EMBED_DIM,
    TEST_PHRASES,
    make_batch,
    make_instances,
    random_batch,
    random_phrase_bank,
    repo_config,
    tiny_fcos_mo_cfg,
    tiny_mask_rcnn_star_overrides,
    write_random_phrase_bank,
)
from alpseg.text.bank import PhraseBank


def test_random_bank_rows_are_the_seeded_unit_normals_written_to_a_real_bank_file(tmp_path):
    path = write_random_phrase_bank(str(tmp_path / "b.npz"), ["b", "a"], dim=3, prompts="single", seed=0)
    bank = PhraseBank.load(path)
    expected = np.random.RandomState(0).randn(2, 3).astype(np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert bank.phrases == ["b", "a"]  # the given order, not sorted
    assert np.array_equal(bank.embeddings, expected)
    assert (bank.encoder, bank.prompts) == ("open_clip:ViT-B-32:none(seed=0)", "single")  # the tiny configs' encoder
    assert random_phrase_bank(["x"], 4, encoder="random").encoder == "random"


def test_make_instances_masks_fill_the_inner_half_of_masked_boxes():
    inst = make_instances((8, 8), [[0, 0, 8, 8], [0, 0, 4, 4]], ["dog", "cat"], [False, True], [True, False])
    assert inst.gt_phrases == ["dog", "cat"]
    assert inst.gt_is_alp.tolist() == [False, True] and inst.gt_has_mask.tolist() == [True, False]
    mask = inst.gt_masks.tensor[0]
    assert mask.sum().item() == 16 and mask[2:6, 2:6].all()  # centre 4, half-extent 2: rows/cols 2..5
    assert inst.gt_masks.tensor[1].sum().item() == 0
    batch = make_batch([inst], seed=3)
    assert torch.equal(batch[0]["image"], torch.randint(0, 256, (3, 8, 8), generator=torch.Generator().manual_seed(3)).float())


def test_random_batch_is_deterministic_and_complete():
    a, b = random_batch(2, (32, 48), 3, num_classes=5, seed=1), random_batch(2, (32, 48), 3, num_classes=5, seed=1)
    for x, y in zip(a, b):
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["instances"].gt_boxes.tensor, y["instances"].gt_boxes.tensor)
        inst = x["instances"]
        assert inst.gt_phrases == [f"class {c}" for c in inst.gt_classes.tolist()]
        assert inst.gt_has_mask.all() and not inst.gt_is_alp.any() and inst.gt_masks.tensor.shape == (3, 32, 48)


def test_tiny_configs():
    cfg = tiny_fcos_mo_cfg("bank.npz")
    assert cfg.MODEL.OPEN_VOCAB.EMBED_DIM == TEST_EMBED_DIM and cfg.MODEL.OPEN_VOCAB.EMBEDDINGS == "bank.npz"
    assert cfg.MODEL.RESNETS.DEPTH == 18 and cfg.MODEL.META_ARCHITECTURE == "FCOSMO"
    opts = tiny_mask_rcnn_star_overrides("b.npz", mode=None)
    assert "MODEL.MASK_RCNN_STAR.ALP_SUPERVISION" not in opts
    assert tiny_mask_rcnn_star_overrides("b.npz", mode="none")[-2:] == ["MODEL.MASK_RCNN_STAR.ALP_SUPERVISION", "none"]
    assert len(set(TEST_PHRASES)) == len(TEST_PHRASES)
    with pytest.raises(FileNotFoundError, match="make setup"):
        repo_config("no-such-config.yaml")


def _imports(path):
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


@pytest.mark.parametrize("script", sorted(glob.glob(os.path.join(REPO_ROOT, "bench", "*.py"))),
                         ids=os.path.basename)
def test_bench_scripts_edit_no_sys_path_and_import_nothing_from_tests(script):
    src = open(script, encoding="utf-8").read()
    assert "sys.path.insert" not in src and "sys.path.append" not in src
    assert '"tests"' not in src  # no file of tests/ loaded by path (os.path.join(ROOT, "tests", ...))
    assert not [m for m in _imports(script) if m == "tests" or m.startswith("tests.")]
