"""FCOS-MO's inference path: the mask head sees only the final detections (one RoI per distinct box),
all images of a batch in one call, and a single image (the exported case) gets exactly the batched path's masks; Mask R-CNN*'s
single-image path (no per-image splits) gives the batched path's detections."""
import numpy as np
import torch
from detectron2.modeling import build_model

from alpseg.config import load_config


def _model(tiny_opts):
    torch.manual_seed(0)
    cfg = load_config("configs/demo/fcos_mo_alp.yaml", tiny_opts + ["INPUT.MIN_SIZE_TEST", "96",
                                                                     "INPUT.MAX_SIZE_TEST", "96"])
    model = build_model(cfg).eval()
    emb = torch.nn.functional.normalize(torch.randn(5, cfg.MODEL.OPEN_VOCAB.EMBED_DIM), dim=1)
    model.set_test_vocabulary([f"phrase {i}" for i in range(5)], emb)
    return model


def test_mask_head_runs_once_on_the_kept_detections_of_all_images(tiny_opts):
    model = _model(tiny_opts)
    rng = np.random.RandomState(0)
    images = [{"image": torch.tensor(rng.randint(0, 256, (3, 96, 128)), dtype=torch.float32)} for _ in range(2)]
    calls, rois, detections = [], [], []
    model.mask_pooler.register_forward_hook(lambda m, inp, out: rois.append([len(b) for b in inp[1]]))
    model.mask_head.enc0.register_forward_hook(lambda m, inp, out: calls.append(inp[0].shape[0]))
    decode = model.inference_single_image
    model.inference_single_image = lambda *a: detections.append(decode(*a)) or detections[-1]
    with torch.no_grad():
        batched = model(images)
    # one mask-head call for the batch, on the distinct boxes of the detections left after threshold,
    # NMS and top-k (tests/modeling/test_mask_inference.py: one RoI per distinct box)
    assert rois == [[len(torch.unique(d.pred_boxes.tensor, dim=0)) for d in detections]] and calls == [sum(rois[0])]
    assert all(0 < n <= model.max_detections_per_image for n in rois[0])
    # detectron2's post-processing then drops empty boxes (many for random weights)
    assert [len(r["instances"]) for r in batched] <= rois[0]
    with torch.no_grad():
        single = [model([im])[0]["instances"] for im in images]
    for b, s in zip(batched, single):
        b = b["instances"]
        assert torch.equal(b.pred_classes, s.pred_classes)
        torch.testing.assert_close(b.pred_boxes.tensor, s.pred_boxes.tensor, atol=1e-4, rtol=0)
        assert (b.pred_masks != s.pred_masks).float().mean().item() < 1e-3  # pasted at the 0.5 threshold


def test_single_image_masks_equal_the_mask_heads_own_inference(tiny_opts):
    """predict_masks' single-image shortcut gives the probabilities detectron2's mask_rcnn_inference gives."""
    from detectron2.modeling.roi_heads.mask_head import mask_rcnn_inference
    from detectron2.structures import Boxes, Instances

    model = _model(tiny_opts)
    channels = model.backbone.output_shape()["p3"].channels
    feats = [torch.randn(1, channels, 96 // s, 128 // s) for s in (8, 16, 32)]
    boxes = Boxes(torch.tensor([[4.0, 4.0, 60.0, 50.0], [30.0, 10.0, 120.0, 90.0], [0.0, 0.0, 8.0, 8.0]]))
    inst = Instances((96, 128), pred_boxes=boxes, pred_classes=torch.tensor([0, 2, 1]))
    ref = Instances((96, 128), pred_boxes=boxes, pred_classes=torch.tensor([0, 2, 1]))
    with torch.no_grad():
        model.predict_masks(feats, [inst])
        x = model.mask_pooler(feats, [boxes])
        mask_rcnn_inference(model.mask_head.layers(x), [ref])
    assert inst.pred_masks.shape == (3, 1, 32, 32)
    assert torch.equal(inst.pred_masks, ref.pred_masks)


def test_mask_rcnn_star_single_image_equals_its_batched_inference(tiny_opts):
    """Mask R-CNN*'s single-image path (no per-image split in predict_probs or the mask head, the
    exported case) gives each image of a batch exactly the detections the batched path gives it."""
    torch.manual_seed(0)
    cfg = load_config("configs/demo/mask_rcnn_star_alp.yaml", tiny_opts + ["MODEL.RPN.POST_NMS_TOPK_TEST", "1000"])
    model = build_model(cfg).eval()
    emb = torch.nn.functional.normalize(torch.randn(5, cfg.MODEL.OPEN_VOCAB.EMBED_DIM), dim=1)
    model.set_test_vocabulary([f"phrase {i}" for i in range(5)], emb)
    rng = np.random.RandomState(0)
    # one size: in a batch a smaller image is padded, which gives it other anchors than alone
    images = [{"image": torch.tensor(rng.randint(0, 256, (3, 96, 128)), dtype=torch.float32)} for _ in range(2)]
    proposals = []
    model.proposal_generator.register_forward_hook(lambda m, inp, out: proposals.append([len(p) for p in out[0]]))
    with torch.no_grad():
        batched = model.inference(images, do_postprocess=False)
        single = [model.inference([im], do_postprocess=False)[0] for im in images]
    # the images differ in their number of proposals, so the batched path really splits
    assert proposals[0][0] != proposals[0][1] and proposals[1:] == [[n] for n in proposals[0]]
    for b, s in zip(batched, single):
        assert len(b) == len(s) > 0
        assert torch.equal(b.pred_classes, s.pred_classes)
        torch.testing.assert_close(b.pred_boxes.tensor, s.pred_boxes.tensor, atol=1e-4, rtol=0)
        torch.testing.assert_close(b.scores, s.scores, atol=1e-5, rtol=0)
        torch.testing.assert_close(b.pred_masks, s.pred_masks, atol=1e-5, rtol=0)
