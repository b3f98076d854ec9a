"""Export FCOS-MO or Mask R-CNN* with a vocabulary to ONNX or TorchScript (detectron2's tracing path).

The meta-architecture is read from the model (:data:`MODEL_KINDS`); both give the same graph
interface, so one runtime serves both. What the exported FCOS-MO graph holds (one image per call)::

    inputs   image             float32 (3, H, W), the test-resized image in the model's INPUT.FORMAT
             phrase_embeddings float32 (C, D), only with ``embeddings_input=True``; otherwise the
                               embeddings of the baked vocabulary are constants of the graph
    graph    pixel normalization, padding to the backbone's size divisibility, backbone + FPN, heads,
             cosine / tau against the phrases + zero background, (C + 1)-way softmax,
             sqrt(prob * centerness), score threshold, per-level top-k, box decoding,
             class-specific NMS, top-N detections, RoIAlign of the kept boxes, mask head, sigmoid
    outputs  boxes (R, 4) XYXY in the resized image, scores (R,), classes (R,) int64 into the
             vocabulary, mask_probs (R, 1, M, M) (absent for a model without a mask head)

Mask R-CNN*: the same inputs and outputs; the graph holds pixel normalization and padding, backbone
+ FPN, the RPN (anchors, per-level top-k, box decoding, NMS, post-NMS top-k), RoIAlign of the
proposals, box head, cosine / tau against the phrases + zero background, (C + 1)-way softmax,
calibration sqrt(prob * sigmoid(objectness)), class-agnostic box decoding, score threshold,
class-specific NMS, top-N, RoIAlign of the kept boxes, Hourglass mask head, sigmoid. Its per-image
splits are trace-safe for one image: the Mask R-CNN* box predictor and mask head skip the split when
there is one image, and detectron2's ``predict_boxes`` split is traced with dynamic sizes because
``TracingAdapter`` patches ``len`` in ``detectron2.modeling.roi_heads.fast_rcnn``.

Outside the graph (:mod:`alpseg.export.runtime`, shipped with the package): reading the image, the
test-time resize (``ResizeShortestEdge``, as ``DefaultPredictor`` does), and detectron2's
``detector_postprocess`` (boxes scaled to the original size and clipped, masks pasted into the
image and thresholded at 0.5). Pasting stays in Python because its output size is the original
image's, which the graph never sees; the phrase encoder stays outside because the vocabulary is
the user's choice (baked, or passed as ``phrase_embeddings``).

Tracing freezes Python control flow, so the sample image used for tracing must give at least one
detection (torchvision's NMS returns early on empty input); :func:`export_model` checks that.
"""
from __future__ import annotations

import copy
import json
import logging
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from detectron2.export import TracingAdapter

from ..utils.io import atomic_open, atomic_write_json
from .fuse import fuse_conv_bn_

__all__ = [
    "export_model", "SIDECAR_SUFFIX", "EXPORT_FORMATS", "MODEL_KINDS", "model_kind", "sidecar_path", "load_sidecar",
    "OUTPUT_NAMES", "trace_inference",
]

logger = logging.getLogger(__name__)

EXPORT_FORMATS = ("onnx", "torchscript")
FILE_NAMES = {"onnx": "model.onnx", "torchscript": "model.ts"}
SIDECAR_SUFFIX = ".json"
OUTPUT_NAMES = ["boxes", "scores", "classes", "mask_probs"]
ONNX_OPSET = 17  # RoiAlign with aligned (half-pixel) coordinates needs opset >= 16
SIDECAR_VERSION = 1
# sidecar "model_kind" -> meta-architecture class name (subclasses are exported as their base)
MODEL_KINDS = {"fcos_mo": "FCOSMO", "mask_rcnn_star": "MaskRCNNStar"}


def sidecar_path(model_path: str) -> str:
    """``model.onnx`` -> ``model.onnx.json``: the vocabulary and pre/post-processing of an export."""
    return model_path + SIDECAR_SUFFIX


def load_sidecar(model_path: str) -> Dict:
    path = sidecar_path(model_path)
    if not os.path.isfile(model_path):
        raise FileNotFoundError(f"{model_path}: no such exported model (make one with tools/export_model.py)")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path}: the sidecar of {model_path} is missing; it is written by tools/export_model.py beside "
            "the model and holds its vocabulary and pre-processing (re-export, or copy it along)"
        )
    with open(path, encoding="utf-8") as f:
        meta = json.load(f)
    if meta.get("alpseg_export") != SIDECAR_VERSION:
        raise ValueError(f"{path}: not an alpseg export sidecar of version {SIDECAR_VERSION}")
    return meta


def model_kind(model) -> str:
    """The key of :data:`MODEL_KINDS` for ``model`` (its class or a base class of it has that name);
    ``TypeError`` for a model that cannot be exported."""
    bases = {cls.__name__ for cls in type(model).__mro__}
    for kind, name in MODEL_KINDS.items():
        if name in bases:
            return kind
    raise TypeError(
        f"export supports MODEL.META_ARCHITECTURE {' and '.join(MODEL_KINDS.values())}; got {type(model).__name__}"
    )


def trace_inference(model, image: Tensor, text: Optional[Tensor] = None):
    """What the exported graph computes: one image -> boxes, scores, classes[, mask_probs]."""
    if model_kind(model) == "mask_rcnn_star":
        return _mask_rcnn_star_inference(model, image, text)
    images = model.preprocess_image([{"image": image}])
    features = model.backbone(images.tensor)
    features = [features[f] for f in model.head_in_features]
    (result,) = model.forward_inference(images, features, model.head(features), text=text)
    outputs = (result.pred_boxes.tensor, result.scores, result.pred_classes)
    if model.mask_head is not None:
        outputs += (result.pred_masks,)
    return outputs


def _mask_rcnn_star_inference(model, image: Tensor, text: Optional[Tensor] = None):
    """Mask R-CNN*'s inference (``GeneralizedRCNN.inference`` without post-processing) on one image,
    classified against ``text`` (``(C, D)``; the test vocabulary when None)."""
    images = model.preprocess_image([{"image": image}])
    features = model.backbone(images.tensor)
    proposals, _ = model.proposal_generator(images, features, None)
    heads = model.roi_heads
    saved = heads.test_phrase_embeddings
    heads.test_phrase_embeddings = model.test_vocabulary[1] if text is None else text
    try:
        (result,), _ = heads(images, features, proposals, None)
    finally:
        heads.test_phrase_embeddings = saved
    outputs = (result.pred_boxes.tensor, result.scores, result.pred_classes)
    if heads.mask_on:
        outputs += (result.pred_masks,)
    return outputs


def _graph_constants(model, kind: str) -> Dict:
    """The test-time thresholds and counts that tracing bakes into the graph (for the sidecar)."""
    if kind == "fcos_mo":
        return {"score_thresh_in_graph": float(model.test_score_thresh),
                "nms_thresh_in_graph": float(model.test_nms_thresh),
                "max_detections_per_image": int(model.max_detections_per_image)}
    predictor, rpn = model.roi_heads.box_predictor, model.proposal_generator
    return {"score_thresh_in_graph": float(predictor.test_score_thresh),
            "nms_thresh_in_graph": float(predictor.test_nms_thresh),
            "max_detections_per_image": int(predictor.test_topk_per_image),
            "rpn_in_graph": {"pre_nms_topk": int(rpn.pre_nms_topk[False]),
                             "post_nms_topk": int(rpn.post_nms_topk[False]), "nms_thresh": float(rpn.nms_thresh)}}


class _NoPhraseBank:
    """Stands in for the phrase bank while tracing: ``torch.jit.trace`` probes every attribute of the
    model, which would load the (possibly absent) bank file; the vocabulary is given, so no lookup
    may happen."""

    def lookup(self, phrases):
        raise RuntimeError("export uses the given vocabulary embeddings; the phrase bank is not consulted")


_trace_inference = trace_inference  # its name before #20 (bench/ and tests/ use the public one)


def export_model(
    model,
    phrases: Sequence[str],
    embeddings: Tensor,
    sample_image: Tensor,
    output_dir: str,
    fmt: str = "onnx",
    embeddings_input: bool = False,
    preprocessing: Optional[Dict] = None,
    extra_meta: Optional[Dict] = None,
    fuse_norms: bool = False,
) -> str:
    """Trace ``model`` (an eval-mode :class:`FCOSMO` or :class:`MaskRCNNStar` on CPU) and write
    ``output_dir/model.{onnx,ts}``.

    Args:
        phrases, embeddings: the vocabulary baked in (``(C, D)`` unit rows); with ``embeddings_input``
            they are only the default that :class:`~alpseg.export.OnnxPredictor` feeds (saved as
            ``phrase_embeddings.npy`` beside the model).
        sample_image: a ``(3, H, W)`` float image, already test-resized, on which the model makes at
            least one detection (tracing records the path the sample takes).
        preprocessing: ``{"input_format", "min_size_test", "max_size_test"}`` for the runtime.
        extra_meta: more keys for the sidecar (config file, weights...).
        fuse_norms: export a copy of the model with batch norms folded into their convs
            (:func:`~alpseg.export.fuse.fuse_conv_bn_`; equal up to float rounding, no speed-up
            measured on the loaded 2-core CPU, see docs/export.md). The export always works on a
            copy: ``model`` and its test vocabulary are left unchanged.

    Returns the path of the exported model; its sidecar is ``sidecar_path(path)``.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {EXPORT_FORMATS}")
    kind = model_kind(model)
    model.eval()
    bank, model.phrase_bank = model._phrase_bank, None  # not copied: the export never looks phrases up
    try:
        model = copy.deepcopy(model)
    finally:
        model.phrase_bank = bank
    fused = fuse_conv_bn_(model) if fuse_norms else 0
    phrases = list(phrases)
    embeddings = embeddings.detach().float().cpu()
    if embeddings.shape[0] != len(phrases):
        raise ValueError(f"{len(phrases)} phrases but {embeddings.shape[0]} embeddings")
    model.set_test_vocabulary(phrases, embeddings)
    with torch.no_grad():
        probe = trace_inference(model, sample_image)
    if probe[0].shape[0] == 0:
        raise ValueError(
            "the sample image gives no detection with this vocabulary, so tracing would freeze the "
            "empty-result path: pass a sample image (--sample-image) with a visible object of the vocabulary"
        )

    if embeddings_input:
        inputs = (sample_image, embeddings)
        func = trace_inference
    else:
        inputs = (sample_image,)
        func = lambda m, image: trace_inference(m, image)  # noqa: E731 (text from the baked vocabulary)
    # eval(): the exporters restore the wrapper's mode afterwards, and a new Module is in training mode
    adapter = TracingAdapter(model, inputs, inference_func=func).eval()
    input_names = ["image"] + (["phrase_embeddings"] if embeddings_input else [])
    output_names = OUTPUT_NAMES[: len(probe)]
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, FILE_NAMES[fmt])
    tmp = path + ".tmp"
    bank, model.phrase_bank = model._phrase_bank, _NoPhraseBank()
    try:
        _write_graph(adapter, fmt, tmp, input_names, output_names)
    finally:
        model.phrase_bank = bank
        model.eval()
    os.replace(tmp, path)
    meta = {
        "alpseg_export": SIDECAR_VERSION,
        "format": fmt,
        "model_kind": kind,
        "meta_architecture": type(model).__name__,
        "inputs": input_names,
        "outputs": output_names,
        "vocabulary": phrases,
        "embedding_dim": int(embeddings.shape[1]),
        "embeddings_input": bool(embeddings_input),
        "default_embeddings": None,
        "preprocessing": preprocessing or {},
        **_graph_constants(model, kind),
        "fused_conv_norms": fused,
        "torch": torch.__version__,
        **({"onnx_opset": ONNX_OPSET} if fmt == "onnx" else {}),
        **(extra_meta or {}),
    }
    if embeddings_input:
        emb_path = os.path.join(output_dir, "phrase_embeddings.npy")
        with atomic_open(emb_path, "wb") as f:
            np.save(f, embeddings.numpy())
        meta["default_embeddings"] = os.path.basename(emb_path)
    atomic_write_json(sidecar_path(path), meta, indent=2)
    logger.info("exported %s (%d phrases) to %s", type(model).__name__, len(phrases), path)
    return path


def _write_graph(adapter: TracingAdapter, fmt: str, path: str, input_names: List[str], output_names: List[str]) -> None:
    with torch.no_grad():
        if fmt == "onnx":
            dynamic = {"image": {1: "height", 2: "width"}, "phrase_embeddings": {0: "num_phrases"}}
            dynamic.update({name: {0: "num_detections"} for name in output_names})
            torch.onnx.export(
                adapter, adapter.flattened_inputs, path, input_names=input_names, output_names=output_names,
                dynamic_axes={k: v for k, v in dynamic.items() if k in input_names + output_names},
                opset_version=ONNX_OPSET, dynamo=False,
            )
            import onnx

            onnx.checker.check_model(path)
        else:
            traced = torch.jit.trace(adapter, adapter.flattened_inputs, check_trace=False)
            traced.save(path)


def default_embeddings(model_path: str, meta: Dict) -> Optional[np.ndarray]:
    """The baked vocabulary's embeddings saved beside an export with an embeddings input."""
    name = meta.get("default_embeddings")
    return np.load(os.path.join(os.path.dirname(model_path), name)) if name else None


def phrase_list(meta: Dict) -> List[str]:
    return list(meta["vocabulary"])
