"""AlpsegDatasetMapper: LSJ sizes, instance fields, ALP-only quantization, empty crops, bad images."""

import numpy as np
import pytest
import torch
from detectron2.data import transforms as T
from detectron2.structures import BoxMode
from pycocotools import mask as mask_utils

from alpseg.config import get_cfg
from alpseg.data.mapper import AlpsegDatasetMapper, PhraseList, build_alpseg_augmentation

from handmade_formats import write_image


def _mask_anno(box_xywh, phrase="apple", category_id=3):
    x, y, w, h = box_xywh
    return {"bbox": list(box_xywh), "bbox_mode": BoxMode.XYWH_ABS, "category_id": category_id, "phrase": phrase,
            "is_alp": False, "iscrowd": 0, "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]]}


def _alp_anno(box_xyxy, phrase="small dolphin"):
    return {"bbox": list(box_xyxy), "bbox_mode": BoxMode.XYXY_ABS, "phrase": phrase, "is_alp": True}


def _mapper(augs, q=(0,), **kw):
    return AlpsegDatasetMapper(True, augmentations=augs, image_format="BGR", box_quantization=q, **kw)


@pytest.fixture
def image_256(tmp_path):
    return write_image(str(tmp_path / "a.jpg"), 256, 256)


def _lsj_cfg(size, lo, hi, flip="none"):
    cfg = get_cfg()
    cfg.INPUT.LSJ.ENABLED = True
    cfg.INPUT.LSJ.IMAGE_SIZE = size
    cfg.INPUT.LSJ.MIN_SCALE, cfg.INPUT.LSJ.MAX_SCALE = lo, hi
    cfg.INPUT.RANDOM_FLIP = flip
    cfg.INPUT.ALP.BOX_QUANTIZATION = [0]
    cfg.MODEL.MASK_ON = True
    return cfg


def test_lsj_output_size_scale_and_padding(tmp_path):
    # 100 x 200 image, LSJ to 64 at scale 0.5: fits 32 x 32 -> factor min(32/100, 32/200) = 0.16 -> 16 x 32,
    # padded to 64 x 64 with the mean pixel; masks padded with 0. (Integer boxes must not be truncated.)
    path = write_image(str(tmp_path / "wide.jpg"), 100, 200)
    full = mask_utils.encode(np.asfortranarray(np.ones((100, 200), np.uint8)))
    rec = {"file_name": path, "height": 100, "width": 200, "image_id": 1, "annotations": [
        _alp_anno((20, 10, 70, 50)), dict(_mask_anno((20, 10, 50, 40)), segmentation=full)]}
    cfg = _lsj_cfg(64, 0.5, 0.5)
    out = AlpsegDatasetMapper(cfg, is_train=True)(rec)
    assert tuple(out["image"].shape) == (3, 64, 64)
    pad = round(float(np.mean(cfg.MODEL.PIXEL_MEAN)))
    assert (out["image"][:, 16:, :] == pad).all() and (out["image"][:, :, 32:] == pad).all()
    inst = out["instances"]
    # the ALP box is scaled by 0.16; the masked instance's box is recomputed from its (whole-image) mask
    assert torch.allclose(inst.gt_boxes.tensor, torch.tensor([[3.2, 1.6, 11.2, 8.0], [0, 0, 32, 16]]), atol=1e-4)
    assert inst.gt_masks.tensor.shape == (2, 64, 64)
    assert inst.gt_masks.tensor[1].sum().item() == 16 * 32  # the padded area holds no mask pixels
    assert inst.gt_masks.tensor[0].sum().item() == 0


def test_lsj_random_scales_always_give_the_square_size(tmp_path):
    path = write_image(str(tmp_path / "tall.jpg"), 120, 60)
    rec = {"file_name": path, "height": 120, "width": 60, "image_id": 1,
           "annotations": [_mask_anno((5, 5, 40, 100))]}
    mapper = AlpsegDatasetMapper(_lsj_cfg(96, 0.5, 2.0, flip="horizontal"), is_train=True)
    np.random.seed(0)
    for _ in range(12):
        out = mapper(rec)
        assert tuple(out["image"].shape) == (3, 96, 96)
        assert len(out["instances"]) <= 1


def test_lsj_config_builds_detectron2_augmentations():
    cfg = _lsj_cfg(1024, 0.5, 2.0, flip="horizontal")
    augs = build_alpseg_augmentation(cfg, True)
    assert [type(a).__name__ for a in augs] == ["RandomFlip", "ResizeScale", "FixedSizeCrop"]
    assert (augs[1].min_scale, augs[1].max_scale, augs[1].target_height) == (0.5, 2.0, 1024)
    assert augs[2].crop_size == (1024, 1024) and augs[2].seg_pad_value == 0
    test_aug = build_alpseg_augmentation(cfg, False)
    assert [type(a).__name__ for a in test_aug] == ["ResizeShortestEdge"]
    cfg.INPUT.LSJ.ENABLED = False
    assert [type(a).__name__ for a in build_alpseg_augmentation(cfg, True)] == ["ResizeShortestEdge", "RandomFlip"]


def test_instance_fields_and_quantization_on_alps_only(image_256):
    # No resize: L = 256, so Q = 16 means 16 px cells.
    rec = {"file_name": image_256, "height": 256, "width": 256, "image_id": 7, "image_phrases": ["dolphin"],
           "annotations": [_mask_anno((17, 33, 30, 27)), _alp_anno((17, 33, 47, 60)),
                           dict(_mask_anno((100, 100, 20, 20), phrase="bird", category_id=5), iscrowd=1)]}
    out = _mapper([], q=(16,))(rec)
    inst = out["instances"]
    assert out["image_phrases"] == ["dolphin"]  # passed through
    assert len(inst) == 2  # the crowd annotation is dropped
    assert inst.gt_boxes.tensor.tolist() == [[17, 33, 47, 60], [16, 32, 48, 64]]  # only the ALP moved
    assert inst.gt_phrases == ["apple", "small dolphin"] and isinstance(inst.gt_phrases, PhraseList)
    assert inst.gt_is_alp.tolist() == [False, True]
    assert inst.gt_has_mask.tolist() == [True, False]
    assert inst.gt_classes.tolist() == [3, -1]
    masks = inst.gt_masks.tensor
    assert masks[1].sum() == 0 and masks[0].sum() > 0
    ys, xs = torch.nonzero(masks[0], as_tuple=True)
    assert (xs.min().item(), ys.min().item(), xs.max().item(), ys.max().item()) == (17, 33, 46, 59)


def test_quantization_uses_the_resized_short_side(tmp_path):
    # 200 x 400 image resized to 100 x 200 (L = 100); Q = 32 -> cell 12.5 px.
    path = write_image(str(tmp_path / "b.jpg"), 200, 400)
    rec = {"file_name": path, "height": 200, "width": 400, "image_id": 1,
           "annotations": [_alp_anno((20, 20, 100, 60))]}
    out = _mapper([T.ResizeTransform(200, 400, 100, 200)], q=(32,))(rec)
    assert out["instances"].gt_boxes.tensor.tolist() == [[0, 0, 50, 37.5]]
    assert not out["instances"].has("gt_masks")  # no instance with a mask


def test_boxes_all_outside_the_crop_give_empty_instances(image_256):
    rec = {"file_name": image_256, "height": 256, "width": 256, "image_id": 1,
           "annotations": [_mask_anno((150, 150, 50, 50)), _alp_anno((200, 10, 250, 100))]}
    out = _mapper([T.CropTransform(0, 0, 128, 128)], q=(32,))(rec)
    inst = out["instances"]
    assert tuple(out["image"].shape) == (3, 128, 128)
    assert len(inst) == 0 and inst.image_size == (128, 128)
    assert inst.gt_boxes.tensor.shape == (0, 4) and inst.gt_phrases == []
    assert inst.gt_is_alp.dtype == torch.bool and inst.gt_has_mask.shape == (0,)
    assert inst.gt_classes.shape == (0,) and not inst.has("gt_masks")


def test_empty_image_and_masks_train_a_detectron2_mask_rcnn_step(image_256, tiny_opts):
    from detectron2 import model_zoo
    from detectron2.modeling import build_model
    from detectron2.utils.events import EventStorage

    cfg = get_cfg()
    cfg.merge_from_file(model_zoo.get_config_file("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml"))
    cfg.merge_from_list(tiny_opts + ["MODEL.ROI_HEADS.NUM_CLASSES", "8", "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE",
                                     "32", "MODEL.RPN.BATCH_SIZE_PER_IMAGE", "32"])
    mapper = _mapper([T.CropTransform(0, 0, 128, 128)])
    empty = mapper({"file_name": image_256, "height": 256, "width": 256, "image_id": 1,
                    "annotations": [_mask_anno((150, 150, 50, 50))]})
    full = mapper({"file_name": image_256, "height": 256, "width": 256, "image_id": 2,
                   "annotations": [_mask_anno((10, 10, 50, 60)), _mask_anno((60, 20, 40, 40), "bird", 5)]})
    assert len(empty["instances"]) == 0 and len(full["instances"]) == 2
    torch.manual_seed(0)
    model = build_model(cfg)
    model.train()
    with EventStorage(0):
        losses = model([empty, full])
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()


def test_phrase_list_indexes_like_a_tensor():
    p = PhraseList(["a", "b", "c"])
    assert p[torch.tensor([True, False, True])] == ["a", "c"]
    assert p[torch.tensor([2, 0])] == ["c", "a"] and p[np.array([1])] == ["b"]
    assert p[1] == "b" and p[torch.tensor(2)] == "c" and isinstance(p[1:], PhraseList)


def test_unreadable_images_are_skipped_in_training_and_errors_at_test(tmp_path):
    bad = tmp_path / "corrupt.jpg"
    bad.write_bytes(b"this is not a jpeg")
    mapper = _mapper([])
    assert mapper({"file_name": str(bad), "image_id": 1, "annotations": []}) is None
    assert mapper({"file_name": str(tmp_path / "missing.jpg"), "image_id": 2, "annotations": []}) is None
    assert mapper.num_skipped == 2
    test_mapper = AlpsegDatasetMapper(False, augmentations=[], image_format="BGR")
    with pytest.raises(OSError, match="corrupt.jpg"):
        test_mapper({"file_name": str(bad), "image_id": 1})
    # a size that disagrees with the dataset dict is also caught
    good = write_image(str(tmp_path / "ok.jpg"), 32, 48)
    assert mapper({"file_name": good, "height": 48, "width": 32, "image_id": 3, "annotations": []}) is None
    assert mapper.num_skipped == 3


def test_test_mode_drops_annotations_and_resizes(image_256):
    cfg = get_cfg()
    cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = 128, 1000
    out = AlpsegDatasetMapper(cfg, is_train=False)({"file_name": image_256, "height": 256, "width": 256,
                                                     "image_id": 1, "annotations": [_alp_anno((0, 0, 9, 9))]})
    assert tuple(out["image"].shape) == (3, 128, 128)
    assert "annotations" not in out and "instances" not in out and out["height"] == 256


def test_missing_phrase_is_a_clear_error(image_256):
    anno = _mask_anno((10, 10, 20, 20))
    del anno["phrase"]
    with pytest.raises(KeyError, match="without 'phrase'"):
        _mapper([])({"file_name": image_256, "image_id": 1, "annotations": [anno]})
