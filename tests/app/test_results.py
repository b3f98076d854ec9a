"""alpseg.app.results: the three results layouts, read into one table with hand-computed values."""
import json

import pytest

from alpseg.app.results import SUMMARY_HEADERS, load_results, per_category_rows, summary_rows


def _write(path, obj):
    path.write_text(json.dumps(obj))
    return str(path)


def test_demo_train_net_and_evaluator_files_side_by_side(tmp_path):
    demo = _write(tmp_path / "results.json", {
        "models": {"open_vocab": {"AP50_base": 90.0, "AP50_novel": 28.1, "AP50": 59.05},
                   "fcos_mo_alp": {"AP50_base": 79.3, "AP50_novel": 44.0, "AP50": 61.65,
                                   "per_seed": {"0": {"AP50_novel": 40.0}, "1": {"AP50_novel": 44.0},
                                                "2": {"AP50_novel": 48.0}}}},
        "alp_curation": {"alps": 3}, "seed": 0, "a_key_from_the_future": [1, 2]})
    (tmp_path / "run").mkdir()
    train = _write(tmp_path / "run" / "results.json", {"oid_challenge": {
        "AP50": 50.0, "AP50-base": 60.0, "AP50-novel": 40.0, "AP50-apple": 70.0, "AP50-snail": float("nan"),
        "AP50-dolphin": 40.0}})
    evaluator = _write(tmp_path / "eval.json", {
        "mAP": 0.25, "AP50_base": 0.5, "AP50_novel": 0.0, "per_class": {"/m/a": 0.5, "/m/d": 0.0, "/m/x": None},
        "class_names": {"/m/a": "apple", "/m/d": "dolphin"}})
    runs = load_results([demo, train, evaluator])
    # demo runs are named by model, a results.json by its folder, another file by folder/stem
    assert [r.name for r in runs] == ["open_vocab", "fcos_mo_alp", "run", f"{tmp_path.name}/eval"]
    assert {r.task for r in runs} == {"oid_challenge"}
    rows = summary_rows(runs)
    assert len(rows[0]) == len(SUMMARY_HEADERS)
    assert rows[0][:7] == ["open_vocab", "oid_challenge", "59.0", "90.0", "28.1", "-", "-"]
    # 40, 44, 48: mean 44.0, sample standard deviation 4.0
    assert rows[1][:7] == ["fcos_mo_alp", "oid_challenge", "61.6", "79.3", "44.0", 3, "44.0 ± 4.0"]
    assert rows[2][:5] == ["run", "oid_challenge", "50.0", "60.0", "40.0"]
    assert rows[3][2:5] == ["25.0", "50.0", "0.0"]  # fractions -> percent
    assert runs[2].per_class == {"apple": 70.0, "dolphin": 40.0}  # NaN left out
    assert runs[3].per_class == {"apple": 50.0, "dolphin": 0.0}


def test_per_category_rows_sort_by_best_ap_or_name(tmp_path):
    a = _write(tmp_path / "a.json", {"segm": {"AP50-zebra": 10.0, "AP50-ant": 30.0, "AP50-cat": 30.0}})
    b = _write(tmp_path / "b.json", {"coco_2017_val_zsd": {"segm": {"AP50-zebra": 90.0, "AP50-base": 1.0}}})
    runs = load_results([a, b])
    assert [r.task for r in runs] == ["segm", "coco_2017_val_zsd/segm"]
    by_ap = per_category_rows(runs, "AP")
    # zebra's best AP is 90 (run b) so it comes first, its runs in file order; ant and cat tie at 30
    d = tmp_path.name
    assert [(r["category"], r["run"], r["AP50"]) for r in by_ap] == [
        ("zebra", f"{d}/a (segm)", 10.0), ("zebra", f"{d}/b (coco_2017_val_zsd/segm)", 90.0),
        ("ant", f"{d}/a (segm)", 30.0), ("cat", f"{d}/a (segm)", 30.0)]
    assert [r["category"] for r in per_category_rows(runs, "name")] == ["ant", "cat", "zebra", "zebra"]
    with pytest.raises(ValueError, match="sort must be"):
        per_category_rows(runs, "score")


def test_unreadable_or_foreign_files_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="missing.json: cannot read results"):
        load_results([str(tmp_path / "missing.json")])
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="broken.json: cannot read results"):
        load_results([str(tmp_path / "broken.json")])
    with pytest.raises(ValueError, match="other.json: no AP values"):
        load_results([_write(tmp_path / "other.json", {"loss": 1.0, "iteration": {"x": 2}})])
    with pytest.raises(ValueError, match="list.json: expected a JSON object"):
        load_results([_write(tmp_path / "list.json", [1, 2])])


def test_results_tab_frames_put_runs_side_by_side_not_stacked(tmp_path):
    pytest.importorskip("gradio", reason="alpseg.app.ui needs the app extra (pip install -e '.[app]')")
    from alpseg.app.ui import _results_values

    a = _write(tmp_path / "a.json", {"segm": {"AP50-cat": 10.0, "AP50-ant": 30.0}})
    b = _write(tmp_path / "b.json", {"segm": {"AP50-cat": 90.0}})
    summary, long, order, wide = _results_values([a, b], "AP")
    d = tmp_path.name
    assert order == [f"cat · {d}/a (segm)", f"cat · {d}/b (segm)", f"ant · {d}/a (segm)"]
    assert list(long["bar"]) == order and list(long["AP50"]) == [10.0, 90.0, 30.0]
    assert wide.values.tolist()[0] == ["cat", 10.0, 90.0] and wide["category"].tolist() == ["cat", "ant"]
    assert summary["run"].tolist() == [f"{d}/a", f"{d}/b"]
    _, single, single_order, _ = _results_values([a], "name")
    assert single_order == ["ant", "cat"]  # one run: bars named by category alone


def test_demo_per_seed_columns_give_one_entry_a_seed(tmp_path):
    """tools/run_demo.py writes per_seed as columns in seed order (issue #23's results.json)."""
    import json

    from alpseg.app.results import load_results, summary_rows

    path = tmp_path / "results.json"
    path.write_text(json.dumps({"models": {"fcos_mo_alp": {
        "AP50_base": 69.5, "AP50_novel": 41.6,
        "per_seed": {"AP50_base": [62.6, 67.4, 78.5], "AP50_novel": [29.4, 45.2, 50.1]}}}}))
    (run,) = load_results([str(path)])
    assert run.per_seed == [{"AP50_base": 62.6, "AP50_novel": 29.4}, {"AP50_base": 67.4, "AP50_novel": 45.2},
                            {"AP50_base": 78.5, "AP50_novel": 50.1}]
    (row,) = summary_rows([run])
    assert row[5] == 3
