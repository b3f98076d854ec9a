"""FCOS-MO exported to ONNX and TorchScript gives PyTorch's detections (a 2-iteration demo model on
the miniature world): the vocabulary baked in, and another vocabulary passed as an input."""
import glob
import json
import os

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from detectron2.checkpoint import DetectionCheckpointer  # noqa: E402
from detectron2.data.detection_utils import read_image  # noqa: E402
from detectron2.engine import DefaultPredictor  # noqa: E402

from alpseg.config import load_config  # noqa: E402
from alpseg.export import OnnxPredictor, TorchScriptPredictor, export_model, load_sidecar, preprocess  # noqa: E402
from alpseg.export.exporter import trace_inference  # noqa: E402
from alpseg.text.bank import PhraseBank  # noqa: E402


@pytest.fixture(scope="module")
def exported(trained_fcos_mo, tmp_path_factory):
    """The trained model, its cfg, test images, and three exports: ONNX and TorchScript with the
    miniature vocabulary baked in, ONNX with the embeddings as an input."""
    t = trained_fcos_mo
    cfg = load_config(t["config"], ["MODEL.WEIGHTS", t["weights"], "MODEL.DEVICE", "cpu"])
    predictor = DefaultPredictor(cfg)
    model = predictor.model
    bank = PhraseBank.load(t["bank"])
    root = os.environ["DETECTRON2_DATASETS"]
    images = sorted(glob.glob(os.path.join(root, "openimages", "validation", "*.jpg")))[:3]
    pre = {"input_format": cfg.INPUT.FORMAT, "min_size_test": cfg.INPUT.MIN_SIZE_TEST,
           "max_size_test": cfg.INPUT.MAX_SIZE_TEST}
    sample = preprocess(read_image(images[0], format="BGR"), {"preprocessing": pre})
    vocab = t["vocabulary"]
    emb = bank.lookup(vocab)
    out = tmp_path_factory.mktemp("exports")
    paths = {
        "onnx": export_model(model, vocab, emb, sample, str(out / "baked"), "onnx", preprocessing=pre),
        # the TorchScript export with folded batch norms: the equality below also covers folding
        "torchscript": export_model(model, vocab, emb, sample, str(out / "baked"), "torchscript", preprocessing=pre,
                                    fuse_norms=True),
        "onnx_input": export_model(model, vocab, emb, sample, str(out / "input"), "onnx", embeddings_input=True,
                                   preprocessing=pre, extra_meta={"phrase_bank": t["bank"]}),
    }
    return {"predictor": predictor, "bank": bank, "images": images, "paths": paths, "vocab": vocab}


def _compare(predictor, runtime, phrases, emb, image):
    """PyTorch (the model's own inference code) against the export on one BGR image.

    Raw graph outputs (after NMS and top-100, in the resized image): same classes, boxes within
    1e-3 px, scores within 1e-4, mask IoU > 0.99 at 0.5. Then the post-processed ``Instances`` of
    both predictors (boxes at the original size, pasted masks) must agree in the same way; a
    2-iteration model predicts many empty boxes, which detectron2's post-processing drops.
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
    assert _min_mask_iou(masks > 0.5, got[3] > 0.5) > 0.99
    ref_inst, got_inst = predictor(image)["instances"], runtime(image)["instances"]
    assert len(ref_inst) == len(got_inst)
    assert torch.equal(ref_inst.pred_classes, got_inst.pred_classes)
    if len(ref_inst):
        assert (ref_inst.pred_boxes.tensor - got_inst.pred_boxes.tensor).abs().max().item() < 1e-3
        assert _min_mask_iou(ref_inst.pred_masks, got_inst.pred_masks) > 0.99
    return len(boxes)


def _min_mask_iou(a, b):
    inter = (a & b).flatten(1).sum(1).float()
    union = (a | b).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union)).min().item()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("kind", ["onnx", "torchscript"])
def test_baked_vocabulary_matches_pytorch(exported, kind):
    path = exported["paths"][kind]
    runtime = OnnxPredictor(path, num_threads=1) if kind == "onnx" else TorchScriptPredictor(path)
    assert runtime.phrases == exported["vocab"]
    emb = exported["bank"].lookup(exported["vocab"])
    sizes = set()
    for image_path in exported["images"]:
        image = read_image(image_path, format="BGR")
        sizes.add(image.shape[:2])
        _compare(exported["predictor"], runtime, exported["vocab"], emb, image)
    # the graph is not tied to the tracing image's size: a crop of another shape
    crop = read_image(exported["images"][1], format="BGR")[5:, 17:]
    assert crop.shape[:2] not in sizes
    _compare(exported["predictor"], runtime, exported["vocab"], emb, crop)


@pytest.mark.timeout(900)
def test_another_vocabulary_as_input_matches_pytorch(exported):
    path = exported["paths"]["onnx_input"]
    meta = load_sidecar(path)
    assert meta["inputs"] == ["image", "phrase_embeddings"] and meta["vocabulary"] == exported["vocab"]
    # default: the vocabulary given at export, saved beside the model
    runtime = OnnxPredictor(path, num_threads=1)
    np.testing.assert_array_equal(runtime.embeddings, exported["bank"].lookup(exported["vocab"]).numpy())
    # another vocabulary: fewer phrases, another order, a COCO name not in the export
    other = [exported["vocab"][3], "person", exported["vocab"][0]]
    emb = exported["bank"].lookup(other)
    image = read_image(exported["images"][0], format="BGR")
    default_scores = runtime.raw(preprocess(image, runtime.meta))[1]
    runtime.set_vocabulary(other, emb.numpy())
    assert runtime.phrases == other
    assert not torch.equal(runtime.raw(preprocess(image, runtime.meta))[1], default_scores)  # the input is used
    for image_path in exported["images"]:
        _compare(exported["predictor"], runtime, other, emb, read_image(image_path, format="BGR"))


def test_baked_export_refuses_another_vocabulary(exported):
    runtime = OnnxPredictor(exported["paths"]["onnx"])
    with pytest.raises(ValueError, match="--embeddings-input"):
        runtime.set_vocabulary(["person"], np.zeros((1, 512), np.float32))
    # a vocabulary string as tools/demo.py and the app pass it: its own vocabulary is accepted
    assert OnnxPredictor(exported["paths"]["onnx"], ",".join(exported["vocab"])).phrases == exported["vocab"]
    with pytest.raises(ValueError, match="--embeddings-input"):
        OnnxPredictor(exported["paths"]["onnx"], "person,apple")


def test_vocabulary_string_is_looked_up_in_the_recorded_bank(exported):
    runtime = OnnxPredictor(exported["paths"]["onnx_input"], "Person, apple")
    assert runtime.phrases == ["person", "apple"]
    np.testing.assert_array_equal(runtime.embeddings, exported["bank"].lookup(["person", "apple"]).numpy())


def test_sidecar_records_vocabulary_and_preprocessing(exported):
    with open(exported["paths"]["onnx"] + ".json") as f:
        meta = json.load(f)
    assert meta["vocabulary"] == exported["vocab"] and meta["format"] == "onnx"
    assert meta["outputs"] == ["boxes", "scores", "classes", "mask_probs"]
    assert meta["preprocessing"] == {"input_format": "RGB", "min_size_test": 96, "max_size_test": 96}
    assert meta["score_thresh_in_graph"] == 0.05 and meta["max_detections_per_image"] == 100
    assert meta["fused_conv_norms"] == 0
    with open(exported["paths"]["torchscript"] + ".json") as f:
        assert json.load(f)["fused_conv_norms"] > 20


def test_missing_sidecar_is_a_clear_error(exported, tmp_path):
    lone = tmp_path / "model.onnx"
    lone.write_bytes(open(exported["paths"]["onnx"], "rb").read())
    with pytest.raises(FileNotFoundError, match="sidecar"):
        OnnxPredictor(str(lone))


def test_folding_batch_norms_keeps_the_detections(exported):
    """fuse_conv_bn_ (opt-in for exports): outputs before/after equal up to float rounding."""
    import copy

    from alpseg.export import fuse_conv_bn_

    model = exported["predictor"].model
    emb = exported["bank"].lookup(exported["vocab"])
    model.set_test_vocabulary(exported["vocab"], emb)
    fused = copy.deepcopy(model)
    with pytest.raises(ValueError, match="eval mode"):
        fuse_conv_bn_(copy.deepcopy(model).train())
    n = fuse_conv_bn_(fused)
    hourglass_convs = fused.mask_head.main_path_convs()
    assert n > len(hourglass_convs) and all(c.norm is None for c in hourglass_convs)
    for image_path in exported["images"]:
        x = preprocess(read_image(image_path, format="BGR"), load_sidecar(exported["paths"]["onnx"]))
        with torch.no_grad():
            ref, got = trace_inference(model, x), trace_inference(fused, x)
        assert torch.equal(ref[2], got[2])
        assert (ref[0] - got[0]).abs().max().item() < 1e-3 and (ref[1] - got[1]).abs().max().item() < 1e-4
        assert _min_mask_iou(ref[3] > 0.5, got[3] > 0.5) > 0.99
