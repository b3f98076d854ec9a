"""The miniature world is in the real formats and says what it claims."""
import base64
import csv
import json
import os
import zlib

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from alpseg.data.miniature import BASE_CLASSES, NOVEL_CLASSES, MiniatureSizes, write_miniature_world

LOCNAR_KEYS = {"dataset_id", "image_id", "annotator_id", "caption", "timed_caption", "traces", "voice_recording"}


def test_coco_json_loads_with_pycocotools_and_masks_match_boxes(miniature_root):
    coco = COCO(os.path.join(miniature_root, "coco/annotations/instances_train2017.json"))
    assert len(coco.getCatIds()) == 80
    base_ids = {c.coco_id for c in BASE_CLASSES}
    anns = coco.loadAnns(coco.getAnnIds())
    assert anns and {a["category_id"] for a in anns} <= base_ids
    for a in anns[:20]:
        m = coco.annToMask(a)
        ys, xs = np.nonzero(m)
        x, y, w, h = a["bbox"]
        # the stored polygon rasterises to exactly the drawn mask: same box, same area
        assert (xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()) == (x, y, w, h)
        assert m.sum() == a["area"]
    for img in coco.loadImgs(coco.getImgIds())[:3]:
        assert os.path.isfile(os.path.join(miniature_root, "coco/train2017", img["file_name"]))


def test_narratives_have_the_locnar_layout_and_traces_over_objects(miniature_root):
    path = os.path.join(miniature_root, "localized_narratives/open_images_train_v6_localized_narratives.jsonl")
    manifest = json.load(open(os.path.join(miniature_root, "manifest.json")))
    with open(path) as f:
        records = [json.loads(line) for line in f]
    assert len(records) == MiniatureSizes().oid_train
    novel_names = {c.name for c in NOVEL_CLASSES}
    mentions_novel = 0
    for rec in records:
        assert set(rec) == LOCNAR_KEYS
        times = [(u["start_time"], u["end_time"]) for u in rec["timed_caption"]]
        assert all(a < b for a, b in times) and all(times[i][1] <= times[i + 1][0] for i in range(len(times) - 1))
        assert " ".join(u["utterance"] for u in rec["timed_caption"]) == rec["caption"]
        pts = [p for seg in rec["traces"] for p in seg]
        assert all(set(p) == {"x", "y", "t"} for p in pts)
        # While an object's phrase is spoken, the mouse is near that object.
        for truth in manifest["narratives"][f"oid/{rec['image_id']}"]:
            t0, t1 = truth["span"]
            x0, y0, x1, y1 = (v / 128 for v in truth["box"])
            near = [p for p in pts if t0 <= p["t"] <= t1]
            assert near
            cx = np.mean([p["x"] for p in near])
            cy = np.mean([p["y"] for p in near])
            assert x0 - 0.1 <= cx <= x1 + 0.1 and y0 - 0.1 <= cy <= y1 + 0.1
            mentions_novel += truth["name"] in novel_names
    assert mentions_novel > 20


def test_challenge_csvs_decode_to_masks_inside_their_boxes(miniature_root):
    seg = os.path.join(miniature_root, "openimages/segmentation")
    rows = list(csv.DictReader(open(os.path.join(seg, "validation-segmentation-masks.csv"))))
    assert rows
    novel_mids = {c.oid_mid for c in NOVEL_CLASSES}
    assert any(r["LabelName"] in novel_mids for r in rows)
    for r in rows[:10]:
        h, w = int(r["ImageHeight"]), int(r["ImageWidth"])
        counts = zlib.decompress(base64.b64decode(r["Mask"]))
        m = mask_utils.decode({"size": [h, w], "counts": counts})
        ys, xs = np.nonzero(m)
        assert xs.min() / w >= float(r["XMin"]) - 1.5 / w and (xs.max() + 1) / w <= float(r["XMax"]) + 1.5 / w
        assert ys.min() / h >= float(r["YMin"]) - 1.5 / h and (ys.max() + 1) / h <= float(r["YMax"]) + 1.5 / h
    labels = list(csv.DictReader(open(os.path.join(seg, "validation-segmentation-labels.csv"))))
    assert {r["Confidence"] for r in labels} == {"0", "1"}


def test_generation_is_deterministic(tmp_path):
    sizes = MiniatureSizes(coco_train=3, coco_val=2, oid_train=3, oid_val=2, oid_test=1, voc=False)
    a = write_miniature_world(str(tmp_path / "a"), seed=3, sizes=sizes)
    b = write_miniature_world(str(tmp_path / "b"), seed=3, sizes=sizes)
    assert a == b
    for rel in ("localized_narratives/open_images_train_v6_localized_narratives.jsonl",
                "openimages/segmentation/validation-segmentation-masks.csv",
                "coco/annotations/instances_train2017.json"):
        assert open(tmp_path / "a" / rel).read() == open(tmp_path / "b" / rel).read()
    c = write_miniature_world(str(tmp_path / "c"), seed=4, sizes=sizes)
    assert c["narratives"] != a["narratives"]


def test_twelve_novel_classes_each_drawn_its_own_way_with_real_oid_names():
    from alpseg.data.datasets.class_lists import shipped_oid_classes

    assert len(NOVEL_CLASSES) >= 12 and len(BASE_CLASSES) == 6
    looks = [(c.shape, c.color) for c in BASE_CLASSES + NOVEL_CLASSES]
    assert len(set(looks)) == len(looks)
    shipped = dict(shipped_oid_classes())
    for c in BASE_CLASSES + NOVEL_CLASSES:
        assert shipped[c.oid_mid] == c.oid_name


def test_an_edited_generator_invalidates_a_cached_tree(tmp_path, monkeypatch):
    import alpseg.data.miniature as mini

    sizes = MiniatureSizes(coco_train=2, coco_val=1, oid_train=2, oid_val=1, oid_test=1, voc=False)
    root = tmp_path / "w"
    first = write_miniature_world(str(root), seed=0, sizes=sizes)
    assert first["settings"]["generator"] == mini.generator_fingerprint()
    (root / "marker").write_text("derived file")
    again = write_miniature_world(str(root), seed=0, sizes=sizes)  # unchanged: the cached tree is reused
    assert again["settings"] == first["settings"] and (root / "marker").exists()
    monkeypatch.setattr(mini, "generator_fingerprint", lambda: "edited")
    second = write_miniature_world(str(root), seed=0, sizes=sizes)
    assert second["settings"]["generator"] == "edited" and not (root / "marker").exists()


def test_every_class_occurs_in_every_split_of_enough_images(miniature_root):
    from alpseg.data.miniature import CLASSES

    seg = os.path.join(miniature_root, "openimages/segmentation")
    for split in ("validation",):
        rows = list(csv.DictReader(open(os.path.join(seg, f"{split}-segmentation-masks.csv"))))
        assert {r["LabelName"] for r in rows} == {c.oid_mid for c in CLASSES}
    coco = COCO(os.path.join(miniature_root, "coco/annotations/instances_train2017.json"))
    assert {a["category_id"] for a in coco.loadAnns(coco.getAnnIds())} == {c.coco_id for c in BASE_CLASSES}
