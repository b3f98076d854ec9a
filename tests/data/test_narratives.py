"""The Localized Narratives reader: valid records come through, bad lines are counted or raise."""
import gzip
import json
from collections import Counter

import numpy as np
import pytest

from alpseg.data.narratives import (
    NarrativeFormatError,
    count_lines,
    iter_narratives,
    parse_narrative,
)


def _bad_lines(good):
    """(line text, expected skip reason) for every kind of unusable line."""
    def with_(**kw):
        return json.dumps(dict(good, **kw))

    without_traces = {k: v for k, v in good.items() if k != "traces"}
    return [
        ('{"image_id": "x", "caption": "a dog"', "invalid_json"),
        ("[1, 2, 3]", "not_an_object"),
        (json.dumps(without_traces), "missing_traces"),
        (with_(traces=[[], []]), "no_traces"),
        (with_(timed_caption=[]), "no_timed_caption"),
        (with_(timed_caption=None), "missing_timed_caption"),
        (with_(caption="   "), "empty_caption"),
        (with_(traces=[[{"x": "0.1", "y": 0.2, "t": 1.0}]]), "bad_traces"),
        (with_(traces=[[{"x": 0.1, "y": 0.2}]]), "bad_traces"),
        (with_(traces=[[{"x": None, "y": 0.2, "t": 1.0}]]), "bad_traces"),
        (with_(traces=[[[0.1, 0.2, 1.0]]]), "bad_traces"),
        (with_(traces=[[{"x": float("nan"), "y": 0.2, "t": 1.0}]]), "bad_traces"),
        (with_(traces={"x": 1}), "bad_traces"),
        (with_(timed_caption=[{"utterance": "dog", "start_time": 2.0, "end_time": 1.0}]), "bad_timed_caption"),
        (with_(image_id=None), "missing_image_id"),
    ]


def test_parse_valid_record(handmade):
    rec = handmade["narratives"][0]
    n = parse_narrative(rec, source="f.jsonl", line=3)
    assert n.image_id == "img_a" and n.annotator_id == 3 and n.caption == rec["caption"]
    assert n.num_segments == 2
    assert n.points.shape == (12, 3)  # 5 + 7 points, all segments concatenated
    np.testing.assert_allclose(n.points[5], [0.5, 0.5, 3.5])
    assert n.timed_caption[0].text == "In this" and n.timed_caption[0].end == 0.4
    assert n.narrative_id == "f.jsonl:3"
    # int image ids become strings (matched to image-info ids as strings)
    assert parse_narrative(dict(rec, image_id=7)).image_id == "7"


def test_bad_lines_are_counted_and_skipped(tmp_path, handmade):
    good = handmade["narratives"][0]
    bad = _bad_lines(good)
    lines = [json.dumps(good)] + [b for b, _ in bad] + ["", json.dumps(handmade["narratives"][1])]
    path = tmp_path / "n.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    skips = Counter()
    got = list(iter_narratives(str(path), skips=skips))
    assert [n.image_id for n in got] == ["img_a", "7"]
    assert [n.line for n in got] == [1, len(lines)]  # blank line passed over, numbering kept
    assert skips == Counter(reason for _, reason in bad)


def test_strict_names_file_and_first_bad_line(tmp_path, handmade):
    good = json.dumps(handmade["narratives"][0])
    path = tmp_path / "n.jsonl"
    path.write_text("\n".join([good, good, json.dumps({"image_id": 1}), "{broken"]) + "\n", encoding="utf-8")
    with pytest.raises(NarrativeFormatError) as e:
        list(iter_narratives(str(path), strict=True))
    assert e.value.line == 3 and e.value.reason == "missing_caption"
    assert str(e.value).startswith(f"{path}:3: missing_caption")


def test_invalid_utf8_and_gzip_and_line_count(tmp_path, handmade):
    good = json.dumps(handmade["narratives"][1]).encode()
    path = tmp_path / "n.jsonl.gz"
    with gzip.open(path, "wb") as f:
        f.write(good + b"\n" + b'{"caption": "\xff\xfe"}\n' + good)  # no final newline
    skips = Counter()
    got = list(iter_narratives([str(path)], skips=skips))
    assert len(got) == 2 and skips == Counter({"invalid_utf8": 1})
    assert count_lines(str(path)) == 3


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        list(iter_narratives(str(tmp_path / "nope.jsonl")))


def test_input_stats_hash_the_content_while_reading_and_gzip_is_found_by_magic(tmp_path):
    import hashlib

    from alpseg.data.narratives import NarrativeInputError, is_gzip, iter_narrative_lines

    content = b'{"a": 1}\n\n{"b": 2}\n'
    plain, packed = tmp_path / "plain.jsonl.gz", tmp_path / "packed.jsonl"  # names that lie
    plain.write_bytes(content)
    packed.write_bytes(gzip.compress(content))
    assert not is_gzip(str(plain)) and is_gzip(str(packed))
    stats = {}
    lines = list(iter_narrative_lines([str(plain), str(packed)], stats))
    assert [(i, n, raw) for i, _, n, raw in lines] == [(0, 1, b'{"a": 1}\n'), (0, 3, b'{"b": 2}\n'),
                                                       (1, 1, b'{"a": 1}\n'), (1, 3, b'{"b": 2}\n')]
    expected = {"sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content), "lines": 2}
    assert stats == {str(plain): expected, str(packed): expected}
    cut = tmp_path / "cut.gz"
    cut.write_bytes(gzip.compress(content * 1000)[:60])
    with pytest.raises(NarrativeInputError, match=r"cut\.gz: truncated or corrupt gzip data"):
        list(iter_narrative_lines(str(cut)))
    with pytest.raises(NarrativeInputError, match=r"cut\.gz"):
        count_lines(str(cut))


@pytest.mark.parametrize("traces", [
    [[{"x": 0.1, "y": 0.2, "t": 1}, {"x": 1, "y": 0, "t": 2}], [], [{"x": 0.5, "y": 0.5, "t": 2.5}]],
    [[{"x": True, "y": 0.2, "t": 1.0}]],  # a bool is a number to numpy, as it always was
    [[{"x": "0.1", "y": 0.2, "t": 1.0}]], [[{"x": None, "y": 0.2, "t": 1.0}]], [[{"x": [1, 2], "y": 0, "t": 0}]],
    [[{"x": 0.1, "y": 0.2}]], [[[0.1, 0.2, 1.0]]], [[{"x": 0.1, "y": 0.2, "t": 1.0}], {"x": 1}], [[], []],
    [[{"x": float("nan"), "y": 0.2, "t": 1.0}]], [[{"x": 1, "y": 2, "t": 3}], [{"x": "a", "y": 2, "t": 3}]],
])
def test_fast_trace_parsing_equals_the_segment_by_segment_path(traces):
    """The one-array fast path gives the points or the error of the per-segment path (#24 speed work)."""
    from alpseg.data.narratives import _parse_segments, _parse_traces

    def outcome(fn):
        try:
            points, n = fn(traces)
            return points.dtype, points.tolist(), n
        except NarrativeFormatError as e:
            return e.reason, e.detail

    assert outcome(_parse_traces) == outcome(_parse_segments)


def test_orjson_and_json_decoding_give_the_same_narrative(tmp_path):
    """Lines orjson refuses (NaN, huge integers, bad UTF-8) take the json path: same record or reason."""
    from alpseg.data.narratives import parse_narrative_line

    good = {"image_id": 12345678901234567890123, "caption": "a dog", "annotator_id": 1,
            "timed_caption": [{"utterance": "a dog", "start_time": 0, "end_time": 1.25}],
            "traces": [[{"x": 0.1, "y": 0.2, "t": 0.5}, {"x": 0.3, "y": 0.4, "t": 1.0}]]}
    n = parse_narrative_line(json.dumps(good).encode())
    assert n.image_id == "12345678901234567890123" and n.points.tolist() == [[0.1, 0.2, 0.5], [0.3, 0.4, 1.0]]
    nan = json.dumps(dict(good, traces=[[{"x": float("nan"), "y": 0.2, "t": 0.5}]])).encode()
    with pytest.raises(NarrativeFormatError, match="bad_traces"):
        parse_narrative_line(nan)
    with pytest.raises(NarrativeFormatError, match="invalid_utf8"):
        parse_narrative_line(b'{"caption": "\xff"}')
    with pytest.raises(NarrativeFormatError, match="invalid_json"):
        parse_narrative_line(b'{"caption": ')
