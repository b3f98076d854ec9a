"""alpseg.app.alps: trace points of the padded window, quantized boxes, highlighted narration and the
drawing, on a hand-made ALPS.json + Localized Narratives line, and on the curated miniature ALPs."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from alpseg.app.alps import AlpBrowser, phrase_colors

CAPTION = "In this image there is a red apple on a table."
# one trace segment, x and y normalized, t in seconds; tp = 0.25 -> window (1.75, 3.25) for [2, 3]
POINTS = [(0.10, 0.10, 1.0), (0.20, 0.30, 1.8), (0.50, 0.40, 2.5), (0.60, 0.80, 3.2), (0.90, 0.90, 3.3)]


@pytest.fixture
def tiny(tmp_path):
    (tmp_path / "images").mkdir()
    Image.fromarray(np.full((50, 100, 3), 128, np.uint8)).save(tmp_path / "images" / "img1.jpg")
    narrative = {"dataset_id": "mini", "image_id": "img1", "annotator_id": 7, "caption": CAPTION,
                 "timed_caption": [{"utterance": w, "start_time": 0.5 * i, "end_time": 0.5 * i + 0.4}
                                   for i, w in enumerate(CAPTION.split())],
                 "traces": [[{"x": x, "y": y, "t": t} for x, y, t in POINTS]], "voice_recording": ""}
    ln = tmp_path / "ln.jsonl"
    ln.write_text("not json\n" + json.dumps(narrative) + "\n")
    start = CAPTION.index("red apple")
    alp = {"image_id": "img1", "phrase": "apple", "text": "red apple", "bbox": [20.0, 15.0, 40.0, 25.0],
           "narrative_id": "ln.jsonl:2", "char_start": start, "time_window": [2.0, 3.0], "num_points": 3, "id": 1}
    table = dict(alp, phrase="table", text="a table", char_start=CAPTION.index("a table"), bbox=[5, 30, 10, 10], id=2)
    alps = {"images": [{"id": "img1", "file_name": "img1.jpg", "width": 100, "height": 50}],
            "annotations": [alp, table], "phrases": ["apple", "table"],
            "report": {"alps": 2, "skipped": {"invalid_json": 1}, "dropped": {"stuff": 4, "picture_word": 1},
                       "settings": {"options": {"temporal_padding": 0.25}}}}
    path = tmp_path / "ALPS.json"
    path.write_text(json.dumps(alps))
    return AlpBrowser(str(path), str(tmp_path / "images"), [str(ln)], quantization=(0, 8, 32))


def test_window_points_quantized_boxes_and_report(tiny):
    assert tiny.temporal_padding == 0.25 and tiny.quantization == [8, 32]
    assert dict(tiny.narrative_skips) == {"invalid_json": 1}
    apple = tiny.alps_of("img1", "APP")[0]
    # points with 1.75 < t < 3.25, in pixels of the 100 x 50 image
    np.testing.assert_allclose(tiny.window_points(apple), [[20, 15], [50, 20], [60, 40]])
    # short side 50: Q=8 -> cells of 1.5625 px, Q=32 -> 6.25 px; XYXY (20, 15, 60, 40) snapped outward
    assert tiny.quantized_boxes(apple) == {8: [18.75, 14.0625, 60.9375, 40.625], 32: [18.75, 12.5, 62.5, 43.75]}
    assert tiny.image_ids("table") == ["img1"] and tiny.image_ids("zebra") == []
    assert tiny.phrases() == [("apple", 1), ("table", 1)]
    assert tiny.report_rows() == [{"outcome": "kept", "reason": "ALPs kept", "count": 2},
                                  {"outcome": "narrative skipped", "reason": "invalid_json", "count": 1},
                                  {"outcome": "phrase dropped", "reason": "stuff", "count": 4},
                                  {"outcome": "phrase dropped", "reason": "picture_word", "count": 1}]
    assert tiny.alp_rows("img1", "apple") == [["apple", "red apple", "2.00-3.00", 3, "20.0, 15.0, 40.0, 25.0"]]


def test_narration_marks_each_alp_in_its_box_colour(tiny):
    colors = phrase_colors(tiny.alps_of("img1"))
    html = tiny.narration_html("img1")
    hexes = {p: "#" + "".join(f"{round(255 * c):02x}" for c in rgb) for p, rgb in colors.items()}
    assert html == (
        '<p class="alp-narration" title="ln.jsonl:2">In this image there is a '
        f'<mark class="alp" data-phrase="apple" style="background:{hexes["apple"]}55;border-bottom:3px solid '
        f'{hexes["apple"]}" title="apple: 2.00-3.00 s">red apple</mark> on '
        f'<mark class="alp" data-phrase="table" style="background:{hexes["table"]}55;border-bottom:3px solid '
        f'{hexes["table"]}" title="table: 2.00-3.00 s">a table</mark>.</p>')
    only_table = tiny.narration_html("img1", "tab")
    assert 'data-phrase="table"' in only_table and "apple" not in only_table.replace("red apple", "")
    assert tiny.narration_html("img1", "zebra") == '<p class="alp-narration">no ALP matches the filter</p>'


def test_drawing_has_the_box_the_points_and_the_dashed_quantized_box(tiny):
    drawn = tiny.draw("img1", "apple", scale=4.0).astype(int)
    assert drawn.shape == (200, 400, 3)
    color = (np.array(phrase_colors(tiny.alps_of("img1", "apple"))["apple"]) * 255).round()

    def near(pixel):
        return bool((np.abs(drawn[pixel] - color) <= 40).all())

    # ALP box bottom edge y = 40 * 4 = 160, from x = 80 to 240; a trace point at (50, 20) * 4
    assert np.mean([near((160, x)) for x in range(100, 220)]) > 0.9
    assert near((80, 200))
    # Q=32 box bottom y = 43.75 * 4 = 175 (dashed, alpha 0.6: some pixels of the line are coloured)
    assert np.mean([not near((175, x)) and drawn[175, x][0] != 128 for x in range(80, 240)]) > 0.3
    # far from everything the grey image is untouched
    assert (np.abs(drawn[195, 395] - 128) <= 3).all()
    without = tiny.draw("img1", "apple", scale=4.0, show_quantized=False).astype(int)
    assert (np.abs(without[175, 80:240] - 128) <= 3).all()


def test_missing_inputs_are_one_line_errors(tmp_path, tiny):
    with pytest.raises(FileNotFoundError, match="nope.json: no such ALPS.json; write one with tools/curate_alps.py"):
        AlpBrowser(str(tmp_path / "nope.json"), str(tmp_path))
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ValueError, match="x.json: not an ALPS.json"):
        AlpBrowser(str(tmp_path / "x.json"), str(tmp_path))
    os.remove(tmp_path / "images" / "img1.jpg")
    with pytest.raises(FileNotFoundError, match="img1.jpg: image img1 of .* not found"):
        tiny.draw("img1")


def test_curated_miniature_alps_are_all_marked_in_their_narration(miniature_with_alps):
    root = miniature_with_alps
    browser = AlpBrowser(os.path.join(root, "alps", "locnar_oid_train_alps.json"),
                         os.path.join(root, "openimages", "train"),
                         [os.path.join(root, "localized_narratives", "open_images_train_v6_localized_narratives.jsonl")])
    total = sum(len(v) for v in browser.by_image.values())
    marks = sum(browser.narration_html(i).count('<mark class="alp"') for i in browser.image_ids())
    assert total == browser.report["alps"] and marks == total  # every ALP found at its char_start
    assert not browser.narrative_skips
