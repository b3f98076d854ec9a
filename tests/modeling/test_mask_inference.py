"""Masks of final detections, once per distinct box (alpseg.modeling.roi_heads.mask_inference): the
same masks as one RoI per detection, for FCOS-MO and Mask R-CNN*, with fewer RoIs."""
import torch
from detectron2.modeling import build_model
from detectron2.modeling.roi_heads import StandardROIHeads
from detectron2.modeling.roi_heads.mask_head import mask_rcnn_inference
from detectron2.structures import Boxes, Instances

from alpseg.config import load_config
from alpseg.modeling.roi_heads.mask_inference import distinct_boxes

A, B, C = [4.0, 4.0, 60.0, 50.0], [30.0, 10.0, 120.0, 90.0], [0.0, 0.0, 8.0, 8.0]


def test_distinct_boxes_maps_every_box_to_its_row():
    boxes = [Boxes(torch.tensor([A, B, A])), Boxes(torch.zeros(0, 4)), Boxes(torch.tensor([C, C]))]
    distinct, inverse = distinct_boxes(boxes)
    assert [len(d) for d in distinct] == [2, 0, 1]
    flat = torch.cat([d.tensor for d in distinct])
    assert torch.equal(flat[inverse], torch.cat([b.tensor for b in boxes]))
    # rows of image 0 point into image 0's distinct boxes, image 2's into its own
    assert inverse.tolist()[:3] == [inverse[0].item(), inverse[1].item(), inverse[0].item()]
    assert set(inverse.tolist()[:3]) == {0, 1} and inverse.tolist()[3:] == [2, 2]
    assert distinct_boxes([Boxes(torch.zeros(0, 4))])[1].numel() == 0


def _one_roi_per_detection(pooler, head, feats, instances):
    x = pooler(feats, [i.pred_boxes for i in instances])
    mask_rcnn_inference(head.layers(x), instances)


def _detections(image_size, boxes, classes):
    return Instances(image_size, pred_boxes=Boxes(torch.tensor(boxes)), pred_classes=torch.tensor(classes))


def test_fcos_mo_masks_equal_one_roi_per_detection_with_fewer_rois(tiny_opts):
    torch.manual_seed(0)
    cfg = load_config("configs/demo/fcos_mo_alp.yaml", tiny_opts)
    model = build_model(cfg).eval()
    channels = model.backbone.output_shape()["p3"].channels
    feats = [torch.randn(2, channels, 96 // s, 128 // s) for s in (8, 16, 32)]
    # image 0: box A kept for three phrases, B for one; image 1: C twice, A once
    dets = [_detections((96, 128), [A, B, A, A], [0, 1, 2, 3]), _detections((96, 128), [C, A, C], [1, 1, 4])]
    refs = [_detections((96, 128), [A, B, A, A], [0, 1, 2, 3]), _detections((96, 128), [C, A, C], [1, 1, 4])]
    rois = []
    model.mask_head.enc0.register_forward_hook(lambda m, inp, out: rois.append(inp[0].shape[0]))
    with torch.no_grad():
        model.predict_masks(feats, dets)
        _one_roi_per_detection(model.mask_pooler, model.mask_head, feats, refs)
    assert rois[0] == 4  # 2 distinct boxes in each image, in one call
    for d, r in zip(dets, refs):
        assert d.pred_masks.shape == r.pred_masks.shape == (len(d), 1, 32, 32)
        torch.testing.assert_close(d.pred_masks, r.pred_masks, atol=1e-5, rtol=0)
    assert torch.equal(dets[0].pred_masks[0], dets[0].pred_masks[2])  # one box, one mask
    assert not torch.equal(dets[0].pred_masks[0], dets[0].pred_masks[1])


def test_mask_rcnn_star_masks_equal_detectron2s_mask_branch(tiny_opts):
    torch.manual_seed(0)
    cfg = load_config("configs/demo/mask_rcnn_star_alp.yaml", tiny_opts)
    model = build_model(cfg).eval()
    heads = model.roi_heads
    feats = {f: torch.randn(1, s.channels, 96 // s.stride, 128 // s.stride)
             for f, s in model.backbone.output_shape().items()}
    dets = [_detections((96, 128), [A, B, A], [0, 2, 1])]
    refs = [_detections((96, 128), [A, B, A], [0, 2, 1])]
    with torch.no_grad():
        heads._forward_mask(feats, dets)
        StandardROIHeads._forward_mask(heads, feats, refs)  # detectron2's branch: one RoI per detection
    torch.testing.assert_close(dets[0].pred_masks, refs[0].pred_masks, atol=1e-5, rtol=0)
    assert torch.equal(dets[0].pred_masks[0], dets[0].pred_masks[2])
