"""FCOS-MO exported to ONNX and TorchScript gives PyTorch's detections (a 2-iteration demo model on
the miniature world): the vocabulary baked in, and another vocabulary passed as an input."""
import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from detectron2.data.detection_utils import read_image  # noqa: E402
from export_checks import compare as _compare  # noqa: E402
from export_checks import (  # noqa: E402
    baked_case, check_another_vocabulary, check_no_detection, make_exports,
)
from export_checks import min_mask_iou as _min_mask_iou  # noqa: E402

from alpseg.export import OnnxPredictor, load_sidecar, preprocess  # noqa: E402
from alpseg.export import trace_inference  # noqa: E402


@pytest.fixture(scope="module")
def exported(trained_fcos_mo, tmp_path_factory):
    """The trained model, its cfg, test images, and three exports: ONNX and TorchScript with the
    miniature vocabulary baked in, ONNX with the embeddings as an input."""
    return make_exports(trained_fcos_mo, tmp_path_factory.mktemp("exports"))


@pytest.mark.timeout(900)
@pytest.mark.parametrize("kind", ["onnx", "torchscript"])
def test_baked_vocabulary_matches_pytorch(exported, kind):
    runtime, emb, images = baked_case(exported, kind)
    for image in images:
        _compare(exported["predictor"], runtime, exported["vocab"], emb, image)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("kind", ["onnx", "torchscript"])
def test_another_vocabulary_as_input_matches_pytorch(exported, kind):
    check_another_vocabulary(exported, kind)


def test_a_vocabulary_without_detections_gives_empty_outputs(exported):
    check_no_detection(exported)


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
    assert (meta["model_kind"], meta["meta_architecture"]) == ("fcos_mo", "FCOSMO")
    assert "rpn_in_graph" not in meta
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
