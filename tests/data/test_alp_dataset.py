"""merge_alps_per_image on hand-made records and the merged COCO datasets of the miniature tree."""
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from alpseg.data.alp_dataset import merge_alps_per_image


def _mask(x, y, w, h, phrase):  # COCO style: XYWH
    return {"bbox": [x, y, w, h], "bbox_mode": BoxMode.XYWH_ABS, "phrase": phrase, "is_alp": False,
            "category_id": 0, "segmentation": [[x, y, x + w, y, x + w, y + h]]}


def _alp(x1, y1, x2, y2, phrase):
    return {"bbox": [x1, y1, x2, y2], "bbox_mode": BoxMode.XYXY_ABS, "phrase": phrase, "is_alp": True}


def test_merge_drops_alps_overlapping_masks_and_keeps_the_others():
    masks = [
        {"image_id": 1, "file_name": "1.jpg", "annotations": [_mask(0, 0, 10, 10, "bird")]},
        {"image_id": 2, "file_name": "2.jpg", "annotations": []},
    ]
    alps = [
        # image 1: IoU with the bird = 64 / 100 = 0.64 -> dropped; 25 / 175 = 0.14 -> kept; far away -> kept
        {"image_id": "1", "annotations": [_alp(1, 1, 9, 9, "small bird"), _alp(5, 5, 15, 15, "apple"),
                                          _alp(20, 20, 30, 30, "dolphin")]},
        {"image_id": 2, "annotations": [_alp(0, 0, 4, 4, "snail")]},
        {"image_id": 3, "file_name": "3.jpg", "annotations": [_alp(0, 0, 4, 4, "lantern")]},
    ]
    merged = merge_alps_per_image(masks, alps)
    assert [str(d["image_id"]) for d in merged] == ["1", "2", "3"]
    assert [a["phrase"] for a in merged[0]["annotations"]] == ["bird", "apple", "dolphin"]
    assert [a["is_alp"] for a in merged[0]["annotations"]] == [False, True, True]
    assert [a["phrase"] for a in merged[1]["annotations"]] == ["snail"]  # no mask there: nothing to overlap
    assert [a["phrase"] for a in merged[2]["annotations"]] == ["lantern"]  # ALP-only image added
    assert len(masks[0]["annotations"]) == 1  # inputs untouched
    # A stricter threshold keeps the 0.64 one too; a looser one drops the 0.14 one as well.
    assert len(merge_alps_per_image(masks, alps, overlap_iou=0.7)[0]["annotations"]) == 4
    assert len(merge_alps_per_image(masks, alps, overlap_iou=0.1)[0]["annotations"]) == 2
    with pytest.raises(ValueError, match="overlap_iou"):
        merge_alps_per_image(masks, alps, overlap_iou=0.0)
    with pytest.raises(ValueError, match="appears twice"):
        merge_alps_per_image(masks, alps + [alps[0]])


def test_merged_coco_datasets_on_the_miniature_tree(miniature_with_alps):
    from alpseg.data.datasets import ALPSEG_MERGED_DATASETS

    masks = DatasetCatalog.get("coco_2017_train_vocmasks")
    alps = DatasetCatalog.get("locnar_coco_train_alps")
    merged = DatasetCatalog.get("coco_2017_train_vocmasks_merged_alps")
    assert "coco_2017_train_vocmasks_merged_alps" in ALPSEG_MERGED_DATASETS
    num_masks = sum(len(d["annotations"]) for d in masks)
    num_alps = sum(len(d["annotations"]) for d in alps)
    merged_masks = [a for d in merged for a in d["annotations"] if not a["is_alp"]]
    merged_alps = [a for d in merged for a in d["annotations"] if a["is_alp"]]
    assert len(merged_masks) == num_masks and 0 < len(merged_alps) < num_alps
    assert len({str(d["image_id"]) for d in merged}) == len(merged)
    meta, train_meta = MetadataCatalog.get("coco_2017_train_vocmasks_merged_alps"), MetadataCatalog.get("coco_2017_train_vocmasks")
    assert meta.thing_classes == train_meta.thing_classes and meta.novel_classes == train_meta.novel_classes
