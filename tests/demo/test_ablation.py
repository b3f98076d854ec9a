"""The ablation runner's pieces: every variant is a valid config, statistics and table by hand."""
import json
import math
import os

import pytest

from alpseg.config import load_config
from alpseg.demo.ablation import ABLATIONS, REPO, format_ablation_table, read_metrics, summarize


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_every_variant_is_a_valid_config_that_changes_something(name):
    ablation = ABLATIONS[name]
    assert ablation.variants[0][1] == ()  # the first variant is the shipped default
    default = load_config(os.path.join(REPO, ablation.config))
    for _, overrides in ablation.variants[1:]:
        cfg = load_config(os.path.join(REPO, ablation.config), list(overrides))
        assert cfg.dump() != default.dump()
        assert os.path.isfile(os.path.join(REPO, ablation.doc))


def test_summarize_is_mean_and_sample_std():
    mean, std = summarize([1.0, 2.0, 6.0])
    assert mean == 3.0 and std == pytest.approx(math.sqrt(7.0))
    assert summarize([4.0]) == (4.0, 0.0)
    with pytest.raises(ValueError):
        summarize([1.0, float("nan")])


def test_table_and_metrics(tmp_path):
    oid = tmp_path / "oid.json"
    oid.write_text(json.dumps({"oid_challenge": {"AP50-base": 10.0, "AP50-novel": 2.5, "AP50": 4.0}}))
    coco = tmp_path / "coco.json"
    coco.write_text(json.dumps({"bbox": {"AP50-base": 1.0}, "segm": {"AP50-base": 30.0, "AP50-novel": 7.0}}))
    assert read_metrics(str(oid)) == {"AP50_base": 10.0, "AP50_novel": 2.5}
    assert read_metrics(str(coco)) == {"AP50_base": 30.0, "AP50_novel": 7.0}
    results = {"x": {"title": "T", "variants": {"a": [{"AP50_base": 1.0, "AP50_novel": 2.0},
                                                      {"AP50_base": 3.0, "AP50_novel": 2.0}]}}}
    assert format_ablation_table(results).splitlines()[2] == "| T | a | 2 | 2.0 +- 1.4 | 2.0 +- 0.0 |"


@pytest.mark.timeout(900)
def test_runner_trains_both_variants_through_the_real_tools(tmp_path):
    """2 iterations, one seed, a small world: every run evaluates (the bank covers the test vocabulary),
    the table has both variants, and a second call reuses every run."""
    from alpseg.data.miniature import MiniatureSizes
    from alpseg.demo.ablation import run_ablations

    small = MiniatureSizes(coco_train=8, coco_val=2, oid_train=12, oid_val=6, oid_test=2, voc=False)
    out = tmp_path / "ablate"
    results = run_ablations(str(out), ["fcos_fg_bias"], seeds=[0], iterations=2, parallel=2, progress=False,
                            sizes=small)
    variants = results["fcos_fg_bias"]["variants"]
    assert len(variants) == 2 and all(len(runs) == 1 for runs in variants.values())
    for runs in variants.values():
        assert 0.0 <= runs[0]["AP50_base"] <= 100.0 and 0.0 <= runs[0]["AP50_novel"] <= 100.0
    assert (out / "ablations.md").read_text().count("| ") >= 4
    finals = sorted(out.glob("runs/*/model_final.pth"))
    assert len(finals) == 2
    mtimes = [p.stat().st_mtime for p in finals]
    again = run_ablations(str(out), ["fcos_fg_bias"], seeds=[0], iterations=2, parallel=2, progress=False,
                          sizes=small)
    assert again["fcos_fg_bias"]["variants"] == variants and [p.stat().st_mtime for p in finals] == mtimes
