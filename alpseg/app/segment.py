"""Segment one image with any vocabulary, for the app: predictors built with the package's
:class:`~alpseg.demo.predictor.OpenVocabPredictor` (or ``alpseg.export.OnnxPredictor`` for ``.onnx``
models once that module exists), predictions kept so that the score slider only re-filters.

ONNX hook: a model path ending in ``.onnx`` is handed to ``alpseg.export.OnnxPredictor(path, vocabulary)``
when ``alpseg.export`` provides it (the same interface as ``OpenVocabPredictor``: ``__call__(bgr) ->
{"instances"}``, ``phrases``, ``metadata``). Without it such a path is refused with a message saying so;
:func:`onnx_available` tells the UI whether to offer it.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["SegmentSession", "onnx_available", "draw_detections", "detection_rows", "DETECTION_HEADERS"]

DETECTION_HEADERS = ["#", "phrase", "score", "x1", "y1", "x2", "y2", "mask pixels"]


def _onnx_predictor_class():
    try:
        from alpseg.export import OnnxPredictor  # added by the export work (issue #21)
    except ImportError:
        return None
    return OnnxPredictor


def onnx_available() -> bool:
    """Whether ``.onnx`` model paths can be used (``alpseg.export.OnnxPredictor`` is importable)."""
    return _onnx_predictor_class() is not None


class SegmentSession:
    """Builds predictors on demand and keeps the last few (building one loads weights and phrases).

    Thread-safe: Gradio serves requests from worker threads.
    """

    def __init__(self, max_predictors: int = 2, device: Optional[str] = None):
        self._cache: "OrderedDict[Tuple[str, str, str], Any]" = OrderedDict()
        self._max = max(1, max_predictors)
        self._device = device
        self._lock = threading.Lock()

    def _build(self, config_file: str, model_path: str, vocabulary: str):
        if model_path.endswith(".onnx"):
            cls = _onnx_predictor_class()
            if cls is None:
                raise ValueError(f"{model_path}: ONNX models need alpseg.export.OnnxPredictor, which this "
                                 f"alpseg does not have; give a .pth checkpoint and its config.yaml")
            return cls(model_path, vocabulary)
        import torch

        from alpseg.config import load_config
        from alpseg.demo.predictor import OpenVocabPredictor

        if not config_file:
            raise ValueError("a PyTorch checkpoint needs its config file (the run's OUTPUT_DIR/config.yaml)")
        cfg = load_config(config_file, ["MODEL.WEIGHTS", model_path])
        cfg.defrost()
        cfg.MODEL.DEVICE = self._device or ("cuda" if torch.cuda.is_available() else "cpu")
        cfg.freeze()
        return OpenVocabPredictor(cfg, vocabulary)

    def predictor(self, config_file: str, model_path: str, vocabulary: str):
        """The predictor for this model and vocabulary (built on first use, then cached)."""
        key = (config_file or "", model_path, vocabulary)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            pred = self._build(*key)
            self._cache[key] = pred
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
            return pred

    def predict(self, image_rgb: np.ndarray, config_file: str, model_path: str, vocabulary: str):
        """(instances on CPU, phrases) of an RGB uint8 image."""
        pred = self.predictor(config_file, model_path, vocabulary)
        with self._lock:  # one model, one forward at a time
            instances = pred(np.ascontiguousarray(image_rgb[:, :, ::-1]))["instances"].to("cpu")
        return instances, list(pred.phrases)


def _above(instances, score_thresh: float):
    return instances[instances.scores >= score_thresh]


def draw_detections(image_rgb: np.ndarray, instances, phrases: Sequence[str], score_thresh: float) -> np.ndarray:
    """Masks, boxes and phrases of detections scoring at least ``score_thresh`` (detectron2 Visualizer)."""
    from detectron2.data.catalog import Metadata
    from detectron2.utils.visualizer import ColorMode, Visualizer

    vis = Visualizer(image_rgb, Metadata(name="alpseg_app", thing_classes=list(phrases)),
                     scale=max(1.0, 512 / max(image_rgb.shape[:2])), instance_mode=ColorMode.IMAGE)
    return vis.draw_instance_predictions(_above(instances, score_thresh)).get_image()


def detection_rows(instances, phrases: Sequence[str], score_thresh: float) -> List[List[Any]]:
    """Rows of :data:`DETECTION_HEADERS`, highest score first."""
    kept = _above(instances, score_thresh)
    order = kept.scores.argsort(descending=True).tolist()
    boxes = kept.pred_boxes.tensor.tolist()
    areas = kept.pred_masks.flatten(1).sum(1).tolist() if kept.has("pred_masks") else [None] * len(kept)
    rows = []
    for rank, i in enumerate(order, 1):
        x1, y1, x2, y2 = (round(v, 1) for v in boxes[i])
        rows.append([rank, phrases[int(kept.pred_classes[i])], round(float(kept.scores[i]), 4), x1, y1, x2, y2,
                     "-" if areas[i] is None else int(areas[i])])
    return rows
