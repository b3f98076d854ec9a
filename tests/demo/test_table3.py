"""The embedded default runs end to end through the real tools (a 2-iteration schedule, a small world,
two seeds here), writes means, spreads, per-seed values, the ALP lift and the machine into
results.json, resumes without retraining, and tools/demo.py segments images with a command-line
vocabulary. The summary arithmetic is checked against numbers computed by hand."""
import json
import os

import pytest

from alpseg.data.miniature import MiniatureSizes
from alpseg.demo.table3 import (DEMO_SIZES, FCOS_MODELS, MASK_RCNN_MODELS, MODELS, format_table, run_table3,
                                summarize)
from alpseg.config import load_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMALL = MiniatureSizes(coco_train=8, coco_val=2, oid_train=12, oid_val=6, oid_test=2, voc=False)


@pytest.mark.timeout(1200)
def test_miniature_table3_pipeline_over_seeds_and_demo_tool(tmp_path):
    out = tmp_path / "demo"
    results = run_table3(str(out), seeds=[0, 1], parallel=2, iterations=2, sizes=SMALL, progress=False)
    assert set(results["models"]) == set(MODELS) and results["seeds"] == [0, 1]
    for name, m in results["models"].items():
        per = m["per_seed"]
        assert len(per["AP50_base"]) == len(per["AP50_novel"]) == 2
        assert m["AP50_novel"] == pytest.approx(sum(per["AP50_novel"]) / 2)
        assert m["AP50_base"] == pytest.approx(sum(per["AP50_base"]) / 2)
        # per-seed values are the runs' own results.json numbers, in seed order
        for i, s in enumerate([0, 1]):
            with open(out / f"seed_{s}" / name / "results.json") as f:
                assert json.load(f)["oid_challenge"]["AP50-novel"] == per["AP50_novel"][i]
    lift = results["lift"]["fcos_mo_alp"]
    assert lift["per_seed"] == pytest.approx([a - b for a, b in zip(results["models"]["fcos_mo_alp"]["per_seed"]["AP50_novel"],
                                                                     results["models"]["open_vocab"]["per_seed"]["AP50_novel"])])
    env = results["environment"]
    assert env["cpu_model"] and env["threads_per_model"] == 1
    assert {"torch", "numpy", "spacy", "open_clip_torch", "detectron2"} <= set(env["versions"])
    for s in ("0", "1"):  # curation found ALPs of novel objects in each seed's world
        assert results["alp_curation"][s]["alps"] > 5
    with open(out / "results.json") as f:
        assert json.load(f)["models"] == results["models"]
    table = (out / "results.md").read_text()
    assert table.strip() == format_table(results)
    assert sum(line.startswith("| ") for line in table.splitlines()) == 1 + len(MODELS)
    assert os.path.realpath(out / "fcos_mo_alp") == os.path.realpath(out / "seed_0" / "fcos_mo_alp")
    assert len(os.listdir(out / "seed_0" / "alps_pictures")) == 4
    assert len([f for f in os.listdir(out / "seed_0" / "predictions") if f.endswith(".png")]) == 4
    # a second run reuses every finished model of every seed (nothing is retrained)
    mtimes = {s: os.path.getmtime(out / f"seed_{s}" / "fcos_mo_alp" / "model_final.pth") for s in (0, 1)}
    again = run_table3(str(out), seeds=[0, 1], parallel=2, iterations=2, sizes=SMALL, progress=False, pictures=False)
    assert {s: os.path.getmtime(out / f"seed_{s}" / "fcos_mo_alp" / "model_final.pth") for s in (0, 1)} == mtimes
    assert again["models"] == results["models"]
    # another schedule is another experiment: the finished run is moved aside (kept), not reused
    run_table3(str(out), seeds=[0], parallel=1, iterations=3, sizes=SMALL, progress=False, pictures=False,
               models=["open_vocab"])
    assert load_config(str(out / "seed_0" / "open_vocab" / "config.yaml")).SOLVER.MAX_ITER == 3
    assert load_config(str(out / "seed_0" / "open_vocab.stale-1" / "config.yaml")).SOLVER.MAX_ITER == 2


def test_summary_means_spreads_and_lift_by_hand():
    per_seed = {
        0: {"open_vocab": {"AP50_base": 80.0, "AP50_novel": 20.0, "AP50": 50.0},
            "fcos_mo_alp": {"AP50_base": 70.0, "AP50_novel": 30.0, "AP50": 50.0}},
        1: {"open_vocab": {"AP50_base": 90.0, "AP50_novel": 24.0, "AP50": 57.0},
            "fcos_mo_alp": {"AP50_base": 74.0, "AP50_novel": 40.0, "AP50": 57.0}},
        2: {"open_vocab": {"AP50_base": 85.0, "AP50_novel": 22.0, "AP50": 53.5},
            "fcos_mo_alp": {"AP50_base": 72.0, "AP50_novel": 35.0, "AP50": 53.5}},
    }
    s = summarize(per_seed, [0, 1, 2])
    alp = s["models"]["fcos_mo_alp"]
    assert alp["AP50_novel"] == pytest.approx(35.0) and alp["AP50_novel_std"] == pytest.approx(5.0)
    assert alp["per_seed"] == {"AP50_base": [70.0, 74.0, 72.0], "AP50_novel": [30.0, 40.0, 35.0]}
    ov = s["models"]["open_vocab"]
    assert ov["AP50_base"] == pytest.approx(85.0) and ov["AP50_base_std"] == pytest.approx(5.0)
    assert s["lift"]["fcos_mo_alp"]["per_seed"] == pytest.approx([10.0, 16.0, 13.0])
    assert s["lift"]["fcos_mo_alp"]["mean"] == pytest.approx(13.0) and s["lift"]["fcos_mo_alp"]["std"] == pytest.approx(3.0)
    s["seeds"] = [0, 1, 2]
    table = format_table(s)
    assert "| 35.0 ± 5.0 | 30.0, 40.0, 35.0 |" in table
    assert "ALP lift (fcos_mo_alp - open_vocab, novel AP50): +13.0 ± 3.0 over 3 seeds (per seed: +10.0, +16.0, +13.0)" in table


def test_table_names_the_paper_row_of_every_model_and_configs_load():
    for name, model in {**FCOS_MODELS, **MASK_RCNN_MODELS}.items():
        assert model.paper_row, name
        cfg = load_config(os.path.join(REPO, model.config))
        assert cfg.SOLVER.CLIP_GRADIENTS.ENABLED and cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE == "full_model"
    # the four Mask R-CNN* rows differ exactly as the paper's configs do
    sup = {n: load_config(os.path.join(REPO, m.config)).MODEL.MASK_RCNN_STAR.ALP_SUPERVISION
           for n, m in MASK_RCNN_MODELS.items()}
    assert sup == {"mrcnn_open_vocab": "none", "mrcnn_alp_noboxes": "image_labels", "mrcnn_alp": "boxes",
                   "mrcnn_box_oracle": "boxes"}
    assert DEMO_SIZES.oid_val >= 150


def test_run_demo_rejects_unknown_models_and_duplicate_seeds(tmp_path):
    with pytest.raises(ValueError, match="unknown demo models"):
        run_table3(str(tmp_path), seeds=[0], models=["nope"])
    with pytest.raises(ValueError, match="distinct"):
        run_table3(str(tmp_path), seeds=[1, 1])


def test_first_seed_is_linked_where_single_seed_readers_look(tmp_path, capsys):
    from alpseg.demo.table3 import _link_reference_seed

    (tmp_path / "seed_3" / "fcos_mo_alp").mkdir(parents=True)
    (tmp_path / "seed_3" / "fcos_mo_alp" / "config.yaml").write_text("x")
    (tmp_path / "datasets").mkdir()  # a real folder left by the single-seed demo: kept, with a note
    _link_reference_seed(str(tmp_path), 3, ["fcos_mo_alp", "datasets"])
    assert (tmp_path / "fcos_mo_alp" / "config.yaml").read_text() == "x"
    assert os.readlink(tmp_path / "fcos_mo_alp") == os.path.join("seed_3", "fcos_mo_alp")
    assert not os.path.islink(tmp_path / "datasets") and "older, single-seed demo" in capsys.readouterr().out
    (tmp_path / "seed_4" / "fcos_mo_alp").mkdir(parents=True)
    _link_reference_seed(str(tmp_path), 4, ["fcos_mo_alp"])  # another first seed: the link moves
    assert os.readlink(tmp_path / "fcos_mo_alp") == os.path.join("seed_4", "fcos_mo_alp")
