"""A finished run is reused only when it was made from the same inputs; nothing is lost otherwise."""
import json
import os

from alpseg.utils.run_cache import FINGERPRINT_FILE, file_digest, prepare_run_folder


def _finish(folder, text="done"):
    with open(os.path.join(folder, "results.json"), "w") as f:
        f.write(text)


def test_a_fresh_folder_gets_the_fingerprint(tmp_path):
    run = str(tmp_path / "run")
    assert prepare_run_folder(run, {"config": "a", "n": 1}) is False
    assert json.load(open(os.path.join(run, FINGERPRINT_FILE))) == {"config": "a", "n": 1}


def test_same_inputs_reuse_a_finished_run_and_resume_an_unfinished_one(tmp_path):
    run = str(tmp_path / "run")
    prepare_run_folder(run, {"config": "a"})
    open(os.path.join(run, "model_0000099.pth"), "w").close()
    assert prepare_run_folder(run, {"config": "a"}) is False  # unfinished: kept for --resume
    assert os.path.isfile(os.path.join(run, "model_0000099.pth"))
    _finish(run)
    assert prepare_run_folder(run, {"config": "a"}) is True
    assert not os.path.exists(run + ".stale-1")


def test_other_inputs_move_the_old_run_aside(tmp_path):
    run = str(tmp_path / "run")
    prepare_run_folder(run, {"config": "a"})
    _finish(run, "old")
    assert prepare_run_folder(run, {"config": "b"}) is False
    assert open(os.path.join(run + ".stale-1", "results.json")).read() == "old"  # nothing lost
    assert os.listdir(run) == [FINGERPRINT_FILE]
    _finish(run, "new")
    assert prepare_run_folder(run, {"config": "a"}) is False
    assert open(os.path.join(run + ".stale-2", "results.json")).read() == "new"


def test_a_run_from_before_fingerprints_is_not_trusted(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    _finish(str(run), "unknown inputs")
    assert prepare_run_folder(str(run), {"config": "a"}) is False
    assert (tmp_path / "run.stale-1" / "results.json").read_text() == "unknown inputs"


def test_file_digest_follows_the_bytes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"x" * 3_000_000)
    b.write_bytes(b"x" * 3_000_000)
    assert file_digest(str(a)) == file_digest(str(b))
    b.write_bytes(b"x" * 2_999_999 + b"y")
    assert file_digest(str(a)) != file_digest(str(b))


def test_a_finished_run_loses_only_its_periodic_checkpoints(tmp_path):
    from alpseg.utils.run_cache import prune_periodic_checkpoints

    run = tmp_path / "run"
    run.mkdir()
    for name, size in (("model_0000199.pth", 7), ("model_0000399.pth", 5), ("model_final.pth", 5),
                       ("model_best.pth", 3), ("metrics.json", 2)):
        (run / name).write_bytes(b"x" * size)
    (run / "last_checkpoint").write_text("model_0000399.pth")
    assert prune_periodic_checkpoints(str(run)) == 0  # not finished: every resume point is kept
    assert prune_periodic_checkpoints(str(tmp_path / "missing")) == 0
    (run / "last_checkpoint").write_text("model_final.pth")
    assert prune_periodic_checkpoints(str(run)) == 12
    assert sorted(os.listdir(run)) == ["last_checkpoint", "metrics.json", "model_best.pth", "model_final.pth"]
    (run / "model_final.pth").unlink()
    (run / "model_0000099.pth").write_bytes(b"x")
    assert prune_periodic_checkpoints(str(run)) == 0  # the final weights are missing: nothing is removed
