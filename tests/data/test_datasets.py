"""Dataset registrations: split class lists, COCO / OID readers on hand-made files, the miniature tree."""
import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from pycocotools import mask as mask_utils

import alpseg  # noqa: F401  (registers the datasets)
from alpseg.data.datasets import ALPSEG_DATASETS, DATASETS_ROOT
from alpseg.data.datasets.builtin import _oid_class_metadata, check_oid_class_file
from alpseg.data.datasets.class_lists import (OID_SEGMENTABLE_CLASSES, coco_oid_base_map, coco_thing_classes,
                                              voc_classes, zsd_base_classes, zsd_novel_classes)
from alpseg.data.datasets.coco_splits import load_coco_split
from alpseg.data.datasets.lazy_metadata import register_lazy_metadata
from alpseg.evaluation.oid.io import read_class_descriptions
from alpseg.text.prompts import normalize_phrase
from alpseg.data.datasets.oid import load_oid_boxes, load_oid_challenge_segmentation

from handmade_formats import (BOX_HEADER, MASK_HEADER, OID_V6_BOX_HEADER, challenge_mask, coco_id, write_coco_json,
                              write_csv)

COCO80 = [n for _, n in coco_thing_classes()]


def _check_split(name, n_classes, n_base, n_novel):
    m = MetadataCatalog.get(name)
    assert (len(m.thing_classes), len(m.base_classes), len(m.novel_classes)) == (n_classes, n_base, n_novel)
    assert not set(m.base_classes) & set(m.novel_classes)
    return m


def test_resource_class_lists():
    assert len(COCO80) == 80 and "dining table" in COCO80
    assert len(voc_classes()) == 20 and set(voc_classes()) <= set(COCO80)
    base, novel = set(zsd_base_classes()), set(zsd_novel_classes())
    assert (len(base), len(novel), len(base & novel)) == (48, 17, 0) and base | novel <= set(COCO80)
    assert {"airplane", "bus", "cat", "dog", "cow", "elephant", "umbrella", "tie", "snowboard", "skateboard", "cup",
            "knife", "cake", "couch", "keyboard", "sink", "scissors"} == novel
    pairs = coco_oid_base_map()
    assert len(pairs) == 60 and len({o for _, o in pairs}) == 60 and len({c for c, _ in pairs}) == 60
    # "Kitchen & dining room table" is in the 500-class detection list only: dining table is not base
    assert ("cup", "mug") in pairs and ("sports ball", "ball") in pairs and "dining table" not in dict(pairs)


def test_registered_coco_splits_report_base_and_novel():
    m = _check_split("coco_2017_val_vocmasks", 80, 20, 60)
    assert m.thing_classes == COCO80 and m.evaluator_type == "coco_base_novel"
    assert set(m.base_classes) == set(voc_classes())
    m = _check_split("coco_2017_train_vocmasks", 20, 20, 60)
    assert m.thing_dataset_id_to_contiguous_id[coco_id("person")] == m.thing_classes.index("person")
    m = _check_split("coco_2017_val_zsd", 65, 48, 17)
    assert set(m.thing_classes) == set(m.base_classes) | set(m.novel_classes)
    assert len(m.thing_dataset_id_to_contiguous_id) == 65 and coco_id("traffic light") not in \
        m.thing_dataset_id_to_contiguous_id
    _check_split("coco_2017_train_zsd", 48, 48, 17)
    assert all(n in DatasetCatalog for n in ALPSEG_DATASETS)


def test_oid_split_is_60_base_240_novel_of_the_shipped_300_class_list():
    meta = _oid_class_metadata(None)  # no dataset on disk: the shipped list
    assert (len(meta["thing_classes"]), len(meta["base_classes"]), len(meta["novel_classes"])) == (300, 60, 240)
    assert not set(meta["base_classes"]) & set(meta["novel_classes"])
    assert meta["thing_mids"][0] == "/m/01bms0" and meta["thing_classes"][0] == "screwdriver"  # file order
    assert {"person", "ball", "sandwich", "airplane", "book", "computer mouse"} <= set(meta["base_classes"])
    assert {"man", "football", "hamburger", "dolphin", "handgun", "mouse"} <= set(meta["novel_classes"])


def test_coco_split_keeps_only_its_classes(tmp_path):
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 64, "height": 48} for i in (1, 2, 3)]
    annos = [
        {"image_id": 1, "category_id": coco_id("person"), "bbox": [1.0, 2.0, 10.0, 20.0]},
        {"image_id": 1, "category_id": coco_id("giraffe"), "bbox": [5.0, 5.0, 10.0, 10.0]},
        {"image_id": 2, "category_id": coco_id("tv"), "bbox": [0.0, 0.0, 30.0, 30.0]},
        {"image_id": 2, "category_id": coco_id("person"), "bbox": [3.0, 3.0, 9.0, 9.0], "iscrowd": 1},
        {"image_id": 3, "category_id": coco_id("toaster"), "bbox": [1.0, 1.0, 5.0, 5.0]},
    ]
    json_file = write_coco_json(str(tmp_path / "instances.json"), images, annos)
    classes = list(voc_classes())
    dicts = load_coco_split(json_file, str(tmp_path), classes)
    assert [d["image_id"] for d in dicts] == [1, 2, 3]  # images kept, even image 3 left without annotations
    got = [[(a["phrase"], a["category_id"], a["iscrowd"], a["is_alp"]) for a in d["annotations"]] for d in dicts]
    p, tv = classes.index("person"), classes.index("tv")
    assert got == [[("person", p, 0, False)], [("tv", tv, 0, False), ("person", p, 1, False)], []]
    assert dicts[0]["annotations"][0]["bbox"] == [1.0, 2.0, 10.0, 20.0]
    assert dicts[0]["file_name"] == os.path.join(str(tmp_path), "000000000001.jpg")
    with pytest.raises(ValueError, match="absent"):
        load_coco_split(json_file, str(tmp_path), ["person", "unicorn"])


def test_oid_challenge_segmentation_reader(tmp_path):
    mids = ["/m/apple", "/m/dolphin_x"]
    classes = write_csv(str(tmp_path / "classes.csv"), None, [[mids[0], "Apple"], [mids[1], "Bottlenose_dolphin"]])
    m1 = np.zeros((40, 60), np.uint8)
    m1[10:20, 30:45] = 1
    rows = [
        ["img_b", mids[0], 60, 40, 0.5, 0.25, 0.75, 0.5, 0, challenge_mask(m1)],
        ["img_b", mids[1], 60, 40, 0.0, 0.0, 1.0, 1.0, 1, ""],  # group-of row without a mask
        ["img_b", "/m/unknown", 60, 40, 0.0, 0.0, 1.0, 1.0, 0, challenge_mask(m1)],  # skipped: not a class
        ["img_a", mids[0], 20, 10, 0.0, 0.0, 0.5, 0.5, 0, "not!base64"],  # skipped: corrupt mask
    ]
    masks = write_csv(str(tmp_path / "masks.csv"), MASK_HEADER, rows)
    boxes = write_csv(str(tmp_path / "boxes.csv"), BOX_HEADER, [["img_c", mids[1], 0.1, 0.2, 0.1, 0.2, 0]])
    dicts = load_oid_challenge_segmentation(masks, boxes, classes, str(tmp_path / "val"))
    assert [d["image_id"] for d in dicts] == ["img_a", "img_b", "img_c"]
    a, b, c = dicts
    assert a["annotations"] == [] and (a["height"], a["width"]) == (10, 20)
    assert "height" not in c and c["file_name"] == os.path.join(str(tmp_path / "val"), "img_c.jpg")
    apple, dolphin = b["annotations"]
    assert apple["bbox"] == [30.0, 10.0, 45.0, 20.0] and apple["phrase"] == "apple" and apple["category_id"] == 0
    assert (mask_utils.decode(apple["segmentation"]) == m1).all()
    assert dolphin["phrase"] == "bottlenose dolphin" and dolphin["iscrowd"] == 1 and "segmentation" not in dolphin
    assert not apple["is_alp"] and not dolphin["is_alp"]


def test_oid_box_oracle_reader(tmp_path):
    import json

    classes = write_csv(str(tmp_path / "classes.csv"), None, [["/m/a", "Apple"], ["/m/b", "Snail"]])
    info = tmp_path / "info.json"
    info.write_text(json.dumps({"images": [{"id": "im1", "file_name": "im1.jpg", "width": 200, "height": 100}]}))
    rows = [["im1", "xclick", "/m/b", 1, 0.1, 0.6, 0.2, 0.9, 0, 0, 0, 0, 0],
            ["im1", "xclick", "/m/a", 1, 0.0, 1.0, 0.0, 1.0, 0, 0, 1, 0, 0],
            ["im1", "xclick", "/m/zzz", 1, 0.0, 1.0, 0.0, 1.0, 0, 0, 0, 0, 0],
            ["other", "xclick", "/m/a", 1, 0.0, 1.0, 0.0, 1.0, 0, 0, 0, 0, 0]]
    bbox = write_csv(str(tmp_path / "bbox.csv"), OID_V6_BOX_HEADER, rows)
    (d,) = load_oid_boxes(bbox, str(info), classes, str(tmp_path / "train"))
    assert d["image_id"] == "im1" and (d["height"], d["width"]) == (100, 200)
    snail, apple = d["annotations"]
    assert snail["bbox"] == pytest.approx([20.0, 20.0, 120.0, 90.0]) and snail["phrase"] == "snail"
    assert snail["category_id"] == 1 and snail["iscrowd"] == 0 and apple["iscrowd"] == 1


def test_metadata_is_resolved_lazily_once(tmp_path):
    calls = []

    def resolve():
        calls.append(1)
        return {"thing_classes": ["a", "b"]}

    meta = register_lazy_metadata("h5_lazy_probe", ["thing_classes"], resolve, evaluator_type="x")
    assert calls == [] and meta.evaluator_type == "x"
    assert MetadataCatalog.get("h5_lazy_probe").thing_classes == ["a", "b"]
    assert meta.thing_classes == ["a", "b"] and calls == [1]
    assert set(meta.as_dict()) == {"name", "evaluator_type", "thing_classes"}
    missing = register_lazy_metadata("h5_lazy_missing", ["thing_classes"],
                                     lambda: read_class_descriptions(str(tmp_path / "nope.csv")))
    with pytest.raises(FileNotFoundError, match="h5_lazy_missing"):
        missing.thing_classes
    MetadataCatalog.remove("h5_lazy_probe")
    MetadataCatalog.remove("h5_lazy_missing")


# ---------------------------------------------------------------- the miniature tree


def test_every_registered_name_loads_from_the_miniature_tree(miniature_with_alps):
    from alpseg.data.miniature import BASE_CLASSES, NOVEL_CLASSES

    assert os.path.abspath(DATASETS_ROOT) == os.path.abspath(miniature_with_alps)
    loaded = {}
    for name in ALPSEG_DATASETS:
        dicts = DatasetCatalog.get(name)
        assert dicts, name
        for d in dicts[:5]:
            assert os.path.isfile(d["file_name"]), (name, d["file_name"])
        for a in (a for d in dicts for a in d["annotations"]):
            assert isinstance(a["phrase"], str) and a["phrase"] and a["is_alp"] == name.endswith("_alps")
        loaded[name] = dicts
    voc = set(voc_classes())
    train_phrases = {a["phrase"] for d in loaded["coco_2017_train_vocmasks"] for a in d["annotations"]}
    assert train_phrases and train_phrases <= voc  # no mask of a non-VOC class
    val_phrases = {a["phrase"] for d in loaded["coco_2017_val_vocmasks"] for a in d["annotations"]}
    assert val_phrases - voc  # ... while val keeps the others (novel)
    for name in ("oid_v6_seg_val", "oid_v6_seg_test", "oid_v6_locnar_train_boxes"):
        m = MetadataCatalog.get(name)
        # the real split; the miniature classes are real classes of it, on the right side
        assert (len(m.thing_classes), len(m.base_classes), len(m.novel_classes)) == (300, 60, 240)
        assert {c.oid_name.lower() for c in BASE_CLASSES} <= set(m.base_classes)
        assert {c.oid_name.lower() for c in NOVEL_CLASSES} <= set(m.novel_classes)
        assert len(m.thing_mids) == len(m.thing_classes)
    m = MetadataCatalog.get("oid_v6_seg_val")
    assert m.evaluator_type == "oid_challenge" and all(os.path.isfile(p) for p in m.oid_gt.values())
    for d in loaded["oid_v6_seg_val"][:5]:
        for a in d["annotations"]:
            mask = mask_utils.decode(a["segmentation"])
            assert mask.shape == (d["height"], d["width"]) and mask.any()
    for name in ("locnar_coco_train_alps", "locnar_oid_train_alps"):
        assert all(a["bbox_mode"] == 0 for d in loaded[name] for a in d["annotations"])  # XYXY_ABS


def test_alternating_loader_on_the_miniature_masks_and_alps(miniature_with_alps):
    from alpseg.config import get_cfg
    from alpseg.data.build import build_alpseg_train_loader

    cfg = get_cfg()
    cfg.DATASETS.TRAIN = ("coco_2017_train_vocmasks", "locnar_oid_train_alps")
    cfg.DATALOADER.ALTERNATE_DATASETS = True
    cfg.DATALOADER.NUM_WORKERS = 2
    cfg.SOLVER.IMS_PER_BATCH = 2
    cfg.MODEL.MASK_ON = True
    cfg.INPUT.LSJ.ENABLED = True
    cfg.INPUT.LSJ.IMAGE_SIZE = 96
    cfg.SEED = 1
    coco_dir = os.path.join(miniature_with_alps, "coco", "train2017")
    for i, batch in enumerate(build_alpseg_train_loader(cfg)):
        from_coco = [os.path.dirname(b["file_name"]) == coco_dir for b in batch]
        assert from_coco == [i % 2 == 0] * 2
        for b in batch:
            inst = b["instances"]
            assert tuple(b["image"].shape) == (3, 96, 96)
            assert (inst.gt_is_alp == (i % 2 == 1)).all() and (inst.gt_has_mask == (i % 2 == 0)).all()
            if i % 2 == 0:
                assert set(inst.gt_phrases) <= set(voc_classes())
        if i == 19:
            break


def test_oracle_splits_have_masks_of_base_and_boxes_of_novel_classes(miniature_root):
    for name, (n_base, n_novel) in {"coco_2017_train_vocmasks_oracle": (20, 60),
                                    "coco_2017_train_zsd_oracle": (48, 17)}.items():
        m = _check_split(name, n_base + n_novel, n_base, n_novel)
        base, novel = set(m.base_classes), set(m.novel_classes)
        annos = [a for d in DatasetCatalog.get(name) for a in d["annotations"]]
        assert {a["phrase"] for a in annos} <= base | novel
        assert all(("segmentation" in a) == (a["phrase"] in base) for a in annos)
        # the miniature COCO has both kinds (e.g. VOC's bottle and bird; ZSD's novel cake)
        assert any(a["phrase"] in novel for a in annos) and any(a["phrase"] in base for a in annos)
        assert all(m.thing_classes[a["category_id"]] == a["phrase"] for a in annos)


def test_oid_metadata_needs_no_dataset_on_disk(tmp_path):
    """The issue's check, in a fresh process whose DETECTRON2_DATASETS is an empty folder."""
    import json
    import subprocess
    import sys

    code = ("import json, alpseg\nfrom detectron2.data import MetadataCatalog\n"
            "m = MetadataCatalog.get('oid_v6_seg_val')\n"
            "print(json.dumps({k: list(getattr(m, k)) for k in ('thing_classes', 'thing_mids', 'base_classes', "
            "'novel_classes')}))")
    env = dict(os.environ, DETECTRON2_DATASETS=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (len(m["base_classes"]), len(m["novel_classes"])) == (60, 240)
    shipped = read_class_descriptions(OID_SEGMENTABLE_CLASSES)
    assert m["thing_mids"] == list(shipped)
    assert m["thing_classes"] == [normalize_phrase(n) for n in shipped.values()]
    assert set(m["base_classes"]) | set(m["novel_classes"]) == set(m["thing_classes"])
    base_map = dict((o, c) for c, o in coco_oid_base_map())
    assert all(base_map[b] in COCO80 for b in m["base_classes"])


def test_a_dataset_class_file_must_agree_with_the_shipped_list(tmp_path):
    shipped = read_class_descriptions(OID_SEGMENTABLE_CLASSES)
    rows = list(shipped.items())
    same = write_csv(str(tmp_path / "same.csv"), None, reversed(rows))  # any order is fine
    assert check_oid_class_file(same) == OID_SEGMENTABLE_CLASSES
    assert check_oid_class_file(str(tmp_path / "absent.csv")) == OID_SEGMENTABLE_CLASSES
    other = rows[:-1] + [("/m/0mini_lantern", "Lantern")]
    other[0] = (other[0][0], "Screw driver")
    bad = write_csv(str(tmp_path / "bad.csv"), None, other)
    with pytest.raises(ValueError) as e:
        _oid_class_metadata(bad)
    msg = str(e.value)
    assert "bad.csv disagrees" in msg and "/m/0mini_lantern" in msg and rows[-1][0] in msg
    assert "('/m/01bms0', 'Screw driver', 'Screwdriver')" in msg


def test_oid_readers_accept_a_byte_order_mark(tmp_path):
    """Spreadsheet software writes a UTF-8 BOM before the header; it used to hide the ImageID column."""
    classes = write_csv(str(tmp_path / "classes.csv"), None, [["/m/a", "Apple"]])
    m1 = np.zeros((10, 20), np.uint8)
    m1[2:5, 4:9] = 1
    masks = write_csv(str(tmp_path / "masks.csv"), MASK_HEADER,
                      [["img", "/m/a", 20, 10, 0.2, 0.2, 0.45, 0.5, 0, challenge_mask(m1)]])
    boxes = write_csv(str(tmp_path / "boxes.csv"), BOX_HEADER, [])
    for path in (masks, boxes, classes):
        text = open(path, encoding="utf-8").read()
        with open(path, "w", encoding="utf-8") as f:
            f.write("\ufeff" + text)
    (d,) = load_oid_challenge_segmentation(masks, boxes, classes, str(tmp_path))
    assert d["image_id"] == "img" and [a["phrase"] for a in d["annotations"]] == ["apple"]
    assert (mask_utils.decode(d["annotations"][0]["segmentation"]) == m1).all()


def test_a_split_other_than_60_240_is_an_error(monkeypatch, tmp_path):
    from alpseg.data.datasets import builtin

    base = list(builtin.oid_base_mids())
    monkeypatch.setattr(builtin, "oid_base_mids", lambda: tuple(base[:-1]))
    with pytest.raises(ValueError, match=r"300 classes, 59 base and 241 novel; expected 300 = 60 base \+ 240"):
        _oid_class_metadata(None)
    monkeypatch.setattr(builtin, "oid_base_mids", lambda: tuple(base[:-1] + ["/m/0hnnb"]))  # Umbrella: 500-list only
    with pytest.raises(ValueError, match=r"base MIDs not in .*segmentable300.csv: \['/m/0hnnb'\]"):
        _oid_class_metadata(None)
    # the map's own checks: a MID twice is refused
    rows = open(os.path.join(os.path.dirname(OID_SEGMENTABLE_CLASSES), "..", "coco_oid_base_map.tsv")).read()
    header_end = rows.index("oid_mid\t")
    body = rows[header_end:].splitlines()
    dup = tmp_path / "map.tsv"
    dup.write_text("\n".join(body + [body[1].replace(body[1].split("\t")[2], "dog", 1)]) + "\n")
    from alpseg.data.datasets.class_lists import coco_oid_base_rows

    with pytest.raises(ValueError, match="listed twice"):
        coco_oid_base_rows(str(dup))
