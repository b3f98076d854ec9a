"""Segment images with any vocabulary: a trained open-vocabulary model plus a phrase list.

The model's test vocabulary is replaced by the given phrases (looked up in the phrase bank, or
encoded on the fly when ``MODEL.OPEN_VOCAB.ENCODE_MISSING`` is set), then images are run through
detectron2's ``DefaultPredictor`` and drawn with detectron2's ``Visualizer``.
"""
from __future__ import annotations

import os
from typing import Dict, List, Sequence

import cv2
import numpy as np
from detectron2.data.catalog import Metadata
from detectron2.data.detection_utils import read_image
from detectron2.engine import DefaultPredictor
from detectron2.utils.visualizer import ColorMode, Visualizer

from alpseg.text.bank import build_vocabulary

__all__ = ["OpenVocabPredictor"]


class OpenVocabPredictor:
    """``DefaultPredictor`` whose class names are whatever vocabulary the caller chooses."""

    def __init__(self, cfg, vocabulary: str):
        phrases = build_vocabulary(vocabulary)
        self.predictor = DefaultPredictor(cfg)
        model = self.predictor.model
        if not hasattr(model, "set_test_vocabulary"):
            raise TypeError(f"{type(model).__name__} is not an open-vocabulary model (no set_test_vocabulary)")
        model.set_test_vocabulary(phrases)
        self.phrases: List[str] = list(phrases)
        # unregistered metadata: the Visualizer only needs the class names
        self.metadata = Metadata(name="alpseg_vocabulary", thing_classes=self.phrases)

    def __call__(self, image_bgr: np.ndarray) -> Dict:
        return self.predictor(image_bgr)

    def visualize(self, image_path: str, output_path: str, score_thresh: float = 0.3) -> int:
        """Draw masks, boxes and phrases of one image; returns the number of drawn instances."""
        image = read_image(image_path, format="BGR")
        instances = self(image)["instances"].to("cpu")
        instances = instances[instances.scores >= score_thresh]
        vis = Visualizer(image[:, :, ::-1], self.metadata, scale=max(1.0, 512 / max(image.shape[:2])),
                         instance_mode=ColorMode.IMAGE)
        drawn = vis.draw_instance_predictions(instances).get_image()
        os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
        if not cv2.imwrite(output_path, drawn[:, :, ::-1]):
            raise OSError(f"could not write {output_path}")
        return len(instances)

    def visualize_many(self, image_paths: Sequence[str], output_dir: str, score_thresh: float = 0.3) -> List[str]:
        outputs = []
        for path in image_paths:
            out = os.path.join(output_dir, os.path.splitext(os.path.basename(path))[0] + ".png")
            self.visualize(path, out, score_thresh)
            outputs.append(out)
        return outputs
