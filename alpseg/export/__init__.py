"""Deployable FCOS-MO and Mask R-CNN*: export with a vocabulary baked in (or as an input) and run the export.

* :func:`export_model` traces FCOS-MO or Mask R-CNN* to ONNX or TorchScript (``tools/export_model.py``);
* :class:`OnnxPredictor` / :class:`TorchScriptPredictor` run an export with the interface of the
  PyTorch demo predictor (``tools/demo.py --onnx``).

See docs/export.md for what is inside and outside the graph, measured latency and limits.
"""
from .exporter import (
    EXPORT_FORMATS, MODEL_KINDS, export_model, load_sidecar, model_kind, sidecar_path, trace_inference,
)
from .fuse import fuse_conv_bn_
from .runtime import ExportedPredictor, OnnxPredictor, TorchScriptPredictor, postprocess, preprocess

__all__ = [
    "EXPORT_FORMATS",
    "MODEL_KINDS",
    "export_model",
    "model_kind",
    "fuse_conv_bn_",
    "load_sidecar",
    "sidecar_path",
    "trace_inference",
    "ExportedPredictor",
    "OnnxPredictor",
    "TorchScriptPredictor",
    "postprocess",
    "preprocess",
]
