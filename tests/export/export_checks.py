"""What the export tests of every meta-architecture share: exporting a trained demo model three
ways, and comparing an export's detections with the PyTorch model's on one image."""
import glob
import os

import numpy as np
import torch
from detectron2.data.detection_utils import read_image
from detectron2.engine import DefaultPredictor

from alpseg.config import load_config
from alpseg.export import OnnxPredictor, TorchScriptPredictor, export_model, load_sidecar, postprocess, preprocess
from alpseg.export import trace_inference
from alpseg.text.bank import PhraseBank


def make_exports(trained, out, opts=()):
    """The trained model (``DefaultPredictor``; ``opts``: config overrides), 3 miniature validation
    images, and four exports: ONNX and TorchScript (batch norms folded) with the miniature vocabulary
    baked in, ONNX and TorchScript with the embeddings as an input."""
    cfg = load_config(trained["config"], ["MODEL.WEIGHTS", trained["weights"], "MODEL.DEVICE", "cpu", *opts])
    predictor = DefaultPredictor(cfg)
    model = predictor.model
    bank = PhraseBank.load(trained["bank"])
    root = os.environ["DETECTRON2_DATASETS"]
    images = sorted(glob.glob(os.path.join(root, "openimages", "validation", "*.jpg")))[:3]
    pre = {"input_format": cfg.INPUT.FORMAT, "min_size_test": cfg.INPUT.MIN_SIZE_TEST,
           "max_size_test": cfg.INPUT.MAX_SIZE_TEST}
    sample = preprocess(read_image(images[0], format="BGR"), {"preprocessing": pre})
    vocab = trained["vocabulary"]
    emb = bank.lookup(vocab)
    paths = {
        "onnx": export_model(model, vocab, emb, sample, str(out / "baked"), "onnx", preprocessing=pre),
        # the TorchScript export with folded batch norms: the equality below also covers folding
        "torchscript": export_model(model, vocab, emb, sample, str(out / "baked"), "torchscript", preprocessing=pre,
                                    fuse_norms=True),
        "onnx_input": export_model(model, vocab, emb, sample, str(out / "input"), "onnx", embeddings_input=True,
                                   preprocessing=pre, extra_meta={"phrase_bank": trained["bank"]}),
        "torchscript_input": export_model(model, vocab, emb, sample, str(out / "input"), "torchscript",
                                          embeddings_input=True, preprocessing=pre),
    }
    return {"predictor": predictor, "bank": bank, "images": images, "paths": paths, "vocab": vocab, "sample": sample}


def compare(predictor, runtime, phrases, emb, image, undecided=0.0):
    """PyTorch (the model's own inference code) against the export on one BGR image.

    Raw graph outputs (after NMS and top-100, in the resized image): same classes, boxes within
    1e-3 px, scores within 1e-4, mask probabilities within 1e-5, mask IoU > 0.99 at 0.5. Then the
    post-processed ``Instances`` of both predictors (boxes at the original size, pasted masks) must
    agree in the same way; a 2-iteration model predicts many empty boxes, which detectron2's
    post-processing drops.

    ``undecided``: the IoUs leave out the pixels whose PyTorch mask probability (raw, or interpolated
    while pasting) is within this distance of the 0.5 threshold, where a float rounding difference
    flips the pixel; the pixels left must hold both foreground and background. Returns the number of
    raw detections.
    """
    model = predictor.model
    model.set_test_vocabulary(phrases, emb)
    x = preprocess(image, runtime.meta)
    with torch.no_grad():
        ref = trace_inference(model, x)
    got = runtime.raw(x)
    boxes, scores, classes, masks = ref
    assert len(boxes) == len(got[0]) > 0
    assert torch.equal(classes, got[2])
    assert (boxes - got[0]).abs().max().item() < 1e-3
    assert (scores - got[1]).abs().max().item() < 1e-4
    assert (masks - got[3]).abs().max().item() < 1e-5
    decided = (masks - 0.5).abs() > undecided if undecided else None
    assert min_mask_iou(masks > 0.5, got[3] > 0.5, decided) > 0.99
    ref_inst, got_inst = predictor(image)["instances"], runtime(image)["instances"]
    assert len(ref_inst) == len(got_inst)
    assert torch.equal(ref_inst.pred_classes, got_inst.pred_classes)
    if len(ref_inst):
        assert (ref_inst.pred_boxes.tensor - got_inst.pred_boxes.tensor).abs().max().item() < 1e-3
        if undecided:  # pasted above 0.5 + undecided, or not pasted at 0.5 - undecided
            hw = (x.shape[1], x.shape[2])
            sure = [postprocess(ref, hw, image.shape[:2], 0.5 + s * undecided).pred_masks
                    for s in (1, -1)]
            decided = sure[0] | ~sure[1]
        assert min_mask_iou(ref_inst.pred_masks, got_inst.pred_masks, decided) > 0.99
    return len(boxes)


def baked_case(exported, kind):
    """The runtime of the ``kind`` ("onnx" / "torchscript") export with the vocabulary baked in, the
    vocabulary's embeddings, and the BGR test images: the miniature ones and a crop of another shape
    (the graph is not tied to the tracing image's size)."""
    path = exported["paths"][kind]
    runtime = OnnxPredictor(path, num_threads=1) if kind == "onnx" else TorchScriptPredictor(path)
    assert runtime.phrases == exported["vocab"]
    images = [read_image(p, format="BGR") for p in exported["images"]]
    images.append(images[1][5:, 17:])
    assert images[-1].shape[:2] not in {im.shape[:2] for im in images[:-1]}
    return runtime, exported["bank"].lookup(exported["vocab"]), images


def check_another_vocabulary(exported, kind="onnx", undecided=0.0):
    """The ``kind`` ("onnx" / "torchscript") export with an embeddings input: by default the export's
    vocabulary (saved beside it); given another vocabulary (fewer phrases, another order, a COCO name
    not in the export) it uses it and matches PyTorch on every image (:func:`compare`)."""
    path = exported["paths"][f"{kind}_input"]
    meta = load_sidecar(path)
    assert meta["inputs"] == ["image", "phrase_embeddings"] and meta["vocabulary"] == exported["vocab"]
    runtime = OnnxPredictor(path, num_threads=1) if kind == "onnx" else TorchScriptPredictor(path)
    np.testing.assert_array_equal(runtime.embeddings, exported["bank"].lookup(exported["vocab"]).numpy())
    other = [exported["vocab"][3], "person", exported["vocab"][0]]
    emb = exported["bank"].lookup(other)
    image = read_image(exported["images"][0], format="BGR")
    default_scores = runtime.raw(preprocess(image, runtime.meta))[1]
    runtime.set_vocabulary(other, emb.numpy())
    assert runtime.phrases == other
    assert not torch.equal(runtime.raw(preprocess(image, runtime.meta))[1], default_scores)  # the input is used
    for image_path in exported["images"]:
        compare(exported["predictor"], runtime, other, emb, read_image(image_path, format="BGR"), undecided)


def check_no_detection(exported):
    """A vocabulary on which nothing passes the score threshold (1000 zero embeddings: every phrase
    gets probability 1/1001, below 0.05 even after calibration) gives empty outputs in PyTorch and in
    the export with an embeddings input, and no instance after post-processing, although the graph
    was traced on an image with detections."""
    phrases = [f"phrase {i}" for i in range(1000)]
    emb = torch.zeros((len(phrases), exported["bank"].dim))
    model = exported["predictor"].model
    model.set_test_vocabulary(phrases, emb)
    runtime = OnnxPredictor(exported["paths"]["onnx_input"], phrases, emb.numpy(), num_threads=1)
    for image_path in exported["images"][:2]:
        image = read_image(image_path, format="BGR")
        x = preprocess(image, runtime.meta)
        with torch.no_grad():
            ref = trace_inference(model, x)
        got = runtime.raw(x)
        assert len(ref[0]) == 0 and [tuple(t.shape) for t in got] == [tuple(t.shape) for t in ref]
        assert len(runtime(image)["instances"]) == 0


def min_mask_iou(a, b, decided=None):
    """The smallest IoU of boolean masks ``a[i]``, ``b[i]`` (1 where both are empty), counting only
    the ``decided`` pixels when given (which must hold both foreground and background of ``a``)."""
    if decided is not None:
        assert (a & decided).any() and (~a & decided).any(), "no decided foreground or background pixel"
        a, b = a & decided, b & decided
    inter = (a & b).flatten(1).sum(1).float()
    union = (a | b).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union)).min().item()
