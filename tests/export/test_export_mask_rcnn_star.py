"""Mask R-CNN* exported to ONNX and TorchScript gives PyTorch's detections (a 2-iteration demo model
on the miniature world): the vocabulary baked in, and another vocabulary passed as an input.

The exports keep up to 1000 RPN proposals (``MODEL.RPN.POST_NMS_TOPK_TEST``; the demo config's 100
is reached on every miniature image), so the number of proposals after the RPN's NMS differs from
image to image: an export whose per-image splits were frozen at the tracing image's counts fails.
"""
import json

import pytest
import torch

pytest.importorskip("onnxruntime")

from export_checks import (  # noqa: E402
    baked_case, check_another_vocabulary, check_no_detection, compare, make_exports,
)

from alpseg.export import load_sidecar, preprocess  # noqa: E402
from alpseg.export import trace_inference  # noqa: E402

POST_NMS_TOPK_TEST = 1000
# The 2-iteration mask head's probabilities lie within about 0.02 of 0.5 (2-4 % of the pixels within
# 1e-4), where a float rounding difference of 1e-7 flips a pixel at the 0.5 threshold: the mask IoUs
# count the pixels farther than this from 0.5, the probabilities themselves must agree within 1e-5.
UNDECIDED = 1e-5


@pytest.fixture(scope="module")
def exported(trained_mask_rcnn_star, tmp_path_factory):
    return make_exports(trained_mask_rcnn_star, tmp_path_factory.mktemp("exports_mask_rcnn_star"),
                        ["MODEL.RPN.POST_NMS_TOPK_TEST", str(POST_NMS_TOPK_TEST)])


def _num_proposals(model, x, emb, phrases):
    """The RPN's proposal count for a pre-processed image (what the per-image splits are sized by)."""
    counts = []
    handle = model.proposal_generator.register_forward_hook(lambda m, i, out: counts.append(len(out[0][0])))
    try:
        model.set_test_vocabulary(phrases, emb)
        with torch.no_grad():
            trace_inference(model, x)
    finally:
        handle.remove()
    return counts[0]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("kind", ["onnx", "torchscript"])
def test_baked_vocabulary_matches_pytorch(exported, kind):
    runtime, emb, images = baked_case(exported, kind)
    vocab, model = exported["vocab"], exported["predictor"].model
    # the images do take other paths than the tracing image: other proposal counts
    traced = _num_proposals(model, exported["sample"], emb, vocab)
    counts = [_num_proposals(model, preprocess(im, runtime.meta), emb, vocab) for im in images]
    assert traced < POST_NMS_TOPK_TEST and any(c != traced for c in counts), (traced, counts)
    for image in images:
        compare(exported["predictor"], runtime, vocab, emb, image, UNDECIDED)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("kind", ["onnx", "torchscript"])
def test_another_vocabulary_as_input_matches_pytorch(exported, kind):
    check_another_vocabulary(exported, kind, UNDECIDED)


def test_a_vocabulary_without_detections_gives_empty_outputs(exported):
    check_no_detection(exported)


def test_sidecar_records_the_model_kind_and_the_graph_constants(exported):
    with open(exported["paths"]["onnx"] + ".json") as f:
        meta = json.load(f)
    assert meta["model_kind"] == "mask_rcnn_star" and meta["meta_architecture"] == "MaskRCNNStar"
    assert meta["inputs"] == ["image"] and meta["outputs"] == ["boxes", "scores", "classes", "mask_probs"]
    assert meta["vocabulary"] == exported["vocab"]
    # configs/Base-MaskRCNNStar.yaml and configs/demo/mask_rcnn_star_alp.yaml, with the test's override
    assert meta["score_thresh_in_graph"] == 0.05 and meta["nms_thresh_in_graph"] == 0.2
    assert meta["max_detections_per_image"] == 100
    assert meta["rpn_in_graph"] == {"pre_nms_topk": 300, "post_nms_topk": POST_NMS_TOPK_TEST, "nms_thresh": 0.7}
    assert load_sidecar(exported["paths"]["onnx_input"])["inputs"] == ["image", "phrase_embeddings"]
    with open(exported["paths"]["torchscript"] + ".json") as f:
        assert json.load(f)["fused_conv_norms"] > 20
