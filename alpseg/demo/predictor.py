"""Segment images with any vocabulary: a trained open-vocabulary model plus a phrase list.

The model's test vocabulary is replaced by the given phrases (looked up in the phrase bank, or
encoded on the fly when ``MODEL.OPEN_VOCAB.ENCODE_MISSING`` is set), then images are run through
detectron2's ``DefaultPredictor`` and drawn with detectron2's ``Visualizer``.

:class:`VocabularyPredictor` holds what every predictor of ``tools/demo.py`` shares (drawing, output
names, skipping unusable inputs); :class:`OpenVocabPredictor` runs the PyTorch model and
``alpseg.export.OnnxPredictor`` an exported one.
"""
from __future__ import annotations

import os
from collections import Counter
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence

import cv2
import numpy as np
from detectron2.data.catalog import Metadata
from detectron2.data.detection_utils import read_image
from detectron2.engine import DefaultPredictor
from detectron2.utils.visualizer import ColorMode, Visualizer

from alpseg.text.vocabulary import build_vocabulary

__all__ = ["OpenVocabPredictor", "VocabularyPredictor", "ImageResult", "output_names", "MIN_IMAGE_SIDE"]

# Smaller images are skipped: the test-time resize would blow a few pixels up to the model's input
# size, and detectron2's Visualizer cannot lay out labels on them.
MIN_IMAGE_SIDE = 8


class ImageResult(NamedTuple):
    """One input of :meth:`VocabularyPredictor.run_images`: ``output`` is the written file, or None
    and ``skipped`` says why (a short reason, also the key of the skip counts)."""

    input: str
    output: Optional[str]
    skipped: str = ""
    detail: str = ""


def output_names(image_paths: Sequence[str]) -> List[str]:
    """A distinct ``.png`` file name for every input, so that no output overwrites another.

    The name is the input's stem (``img1.jpg`` -> ``img1.png``) when no other input has the same stem.
    Inputs that share a stem are named by their path relative to the inputs' common folder, folders
    joined with ``__`` (``a/x.jpg``, ``b/x.jpg`` -> ``a__x.png``, ``b__x.png``), plus the extension
    when that still collides (``img1.jpg``, ``img1.png`` -> ``img1_jpg.png``, ``img1_png.png``).
    Anything left equal gets ``-2``, ``-3``, ... in input order.
    """
    paths = [os.path.abspath(p) for p in image_paths]
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    stem_counts = Counter(stems)
    common = os.path.commonpath([os.path.dirname(p) for p in paths]) if paths else ""
    names = []
    for path, stem in zip(paths, stems):
        if stem_counts[stem] == 1:
            names.append(stem)
            continue
        rel, _ = os.path.splitext(os.path.relpath(path, common))
        names.append(rel.replace(os.sep, "__"))
    name_counts = Counter(names)
    names = [
        f"{n}_{os.path.splitext(p)[1].lstrip('.')}" if name_counts[n] > 1 and os.path.splitext(p)[1] else n
        for n, p in zip(names, paths)
    ]
    seen: Counter = Counter()
    unique = []
    for n in names:
        seen[n] += 1
        unique.append(n if seen[n] == 1 else f"{n}-{seen[n]}")
    return [n + ".png" for n in unique]


class VocabularyPredictor:
    """Drawing and batch running shared by the PyTorch and the exported predictors.

    Subclasses set :attr:`phrases` (class names, prediction order) and implement ``__call__``
    (a BGR ``uint8`` image -> ``{"instances": Instances}`` at the image's size).
    """

    phrases: List[str]

    @property
    def metadata(self) -> Metadata:
        # unregistered metadata: the Visualizer only needs the class names
        return Metadata(name="alpseg_vocabulary", thing_classes=list(self.phrases))

    def __call__(self, image_bgr: np.ndarray) -> Dict:
        raise NotImplementedError

    def draw(self, image_bgr: np.ndarray, score_thresh: float = 0.3):
        """(drawn RGB image, number of drawn instances) of one BGR image."""
        instances = self(image_bgr)["instances"].to("cpu")
        instances = instances[instances.scores >= score_thresh]
        vis = Visualizer(image_bgr[:, :, ::-1], self.metadata, scale=max(1.0, 512 / max(image_bgr.shape[:2])),
                         instance_mode=ColorMode.IMAGE)
        return vis.draw_instance_predictions(instances).get_image(), len(instances)

    def visualize(self, image_path: str, output_path: str, score_thresh: float = 0.3) -> int:
        """Draw masks, boxes and phrases of one image; returns the number of drawn instances."""
        drawn, count = self.draw(read_image(image_path, format="BGR"), score_thresh)
        os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
        if not cv2.imwrite(output_path, drawn[:, :, ::-1]):
            raise OSError(f"could not write {output_path}")
        return count

    def run_images(self, image_paths: Sequence[str], output_dir: str, score_thresh: float = 0.3
                   ) -> Iterator[ImageResult]:
        """Draw every image into ``output_dir`` (names: :func:`output_names`), one result at a time.

        A directory, a file that is not a readable image and an image with a side below
        :data:`MIN_IMAGE_SIDE` pixels are skipped (``skipped``: ``directory``, ``missing``,
        ``unreadable``, ``too_small``); the others are drawn and written as they come.
        """
        for path, name in zip(image_paths, output_names(image_paths)):
            if os.path.isdir(path):
                yield ImageResult(path, None, "directory", "is a directory, not an image")
                continue
            if not os.path.exists(path):
                yield ImageResult(path, None, "missing", "no such file")
                continue
            try:
                image = read_image(path, format="BGR")
            except Exception as e:  # PIL raises several types for files that are not images
                yield ImageResult(path, None, "unreadable", f"{type(e).__name__}: {e}")
                continue
            if min(image.shape[:2]) < MIN_IMAGE_SIDE:
                yield ImageResult(path, None, "too_small",
                                  f"{image.shape[1]}x{image.shape[0]} px, below {MIN_IMAGE_SIDE} px a side")
                continue
            drawn, _ = self.draw(image, score_thresh)
            out = os.path.join(output_dir, name)
            os.makedirs(output_dir, exist_ok=True)
            if not cv2.imwrite(out, drawn[:, :, ::-1]):
                raise OSError(f"could not write {out}: check that the folder is writable")
            yield ImageResult(path, out)

    def visualize_many(self, image_paths: Sequence[str], output_dir: str, score_thresh: float = 0.3) -> List[str]:
        """The written files of :meth:`run_images` (skipped inputs leave no file)."""
        return [r.output for r in self.run_images(image_paths, output_dir, score_thresh) if r.output]


class OpenVocabPredictor(VocabularyPredictor):
    """``DefaultPredictor`` whose class names are whatever vocabulary the caller chooses."""

    def __init__(self, cfg, vocabulary: str):
        phrases = build_vocabulary(vocabulary)
        self.predictor = DefaultPredictor(cfg)
        model = self.predictor.model
        if not hasattr(model, "set_test_vocabulary"):
            raise TypeError(f"{type(model).__name__} is not an open-vocabulary model (no set_test_vocabulary)")
        model.set_test_vocabulary(phrases)
        self.phrases: List[str] = list(phrases)

    def __call__(self, image_bgr: np.ndarray) -> Dict:
        return self.predictor(image_bgr)
