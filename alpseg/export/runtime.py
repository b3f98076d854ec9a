"""Run an exported FCOS-MO or Mask R-CNN* (one interface for both): pre-processing, the graph
(ONNX Runtime or TorchScript), post-processing.

The predictors have the interface of :class:`alpseg.demo.predictor.OpenVocabPredictor` (call on a
BGR ``uint8`` image -> ``{"instances": Instances}`` at the image's size; ``phrases``, ``draw``,
``visualize``, ``run_images``), so ``tools/demo.py --onnx model.onnx`` uses the same drawing code.

Pre-processing (outside the graph): BGR -> the model's ``INPUT.FORMAT``, detectron2's
``ResizeShortestEdge(MIN_SIZE_TEST, MAX_SIZE_TEST)``, float32 CHW, exactly as ``DefaultPredictor``.
Post-processing (outside the graph): :func:`postprocess`, i.e. detectron2's ``detector_postprocess``.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from detectron2.data import transforms as T
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import Boxes, Instances

from ..demo.predictor import VocabularyPredictor
from ..text.bank import PhraseBank
from ..text.vocabulary import build_vocabulary
from ..text.prompts import normalize_phrase
from .exporter import default_embeddings, load_sidecar

__all__ = ["OnnxPredictor", "TorchScriptPredictor", "ExportedPredictor", "postprocess", "preprocess"]


def preprocess(image_bgr: np.ndarray, meta: Dict) -> torch.Tensor:
    """The ``(3, H, W)`` float32 input of the graph for a BGR image (``DefaultPredictor``'s steps)."""
    pre = meta["preprocessing"]
    image = image_bgr[:, :, ::-1] if pre.get("input_format", "BGR") == "RGB" else image_bgr
    aug = T.ResizeShortestEdge([pre["min_size_test"], pre["min_size_test"]], pre["max_size_test"])
    image = aug.get_transform(image).apply_image(image)
    return torch.as_tensor(np.ascontiguousarray(image).astype("float32").transpose(2, 0, 1))


def postprocess(outputs: Sequence[torch.Tensor], input_hw: Tuple[int, int], output_hw: Tuple[int, int],
                mask_threshold: float = 0.5) -> Instances:
    """Graph outputs (boxes, scores, classes[, mask_probs]) of an image resized to ``input_hw`` ->
    ``Instances`` at the original ``output_hw``: boxes scaled and clipped, masks pasted (foreground
    where the interpolated probability is at least ``mask_threshold``). ``outputs`` are left as they
    are (detectron2 scales the boxes in place, so it gets a copy)."""
    boxes, scores, classes = outputs[:3]
    inst = Instances(tuple(input_hw), pred_boxes=Boxes(boxes.clone()), scores=scores, pred_classes=classes)
    if len(outputs) > 3:
        inst.pred_masks = outputs[3]
    return detector_postprocess(inst, output_hw[0], output_hw[1], mask_threshold)


class ExportedPredictor(VocabularyPredictor):
    """Base of the runtimes; subclasses implement :meth:`run` (graph inputs -> output tensors)."""

    def __init__(self, model_path: str, vocabulary: Union[str, Sequence[str], None] = None,
                 embeddings: Optional[np.ndarray] = None):
        """
        Args:
            model_path: the exported model; its sidecar (``model_path + ".json"``) must be beside it.
            vocabulary: None or the export's own vocabulary, or another one (phrases, or a string as
                ``tools/demo.py --vocabulary`` takes) for a model exported with ``--embeddings-input``;
                without ``embeddings`` its phrases are looked up in the phrase bank the sidecar names.
            embeddings: ``(C, D)`` embeddings of ``vocabulary``.
        """
        self.model_path = model_path
        self.meta = load_sidecar(model_path)
        self.phrases: List[str] = list(self.meta["vocabulary"])
        self.embeddings: Optional[np.ndarray] = default_embeddings(model_path, self.meta)
        if isinstance(vocabulary, str):  # a comma list, phrase file or dataset name, as tools/demo.py takes
            vocabulary = build_vocabulary(vocabulary) if vocabulary.strip() else None
        if vocabulary is not None and embeddings is None:
            if [normalize_phrase(p) for p in vocabulary] == self.phrases:
                return  # the export's own vocabulary
            embeddings = self._bank_embeddings(vocabulary)
        if vocabulary is not None or embeddings is not None:
            self.set_vocabulary(vocabulary, embeddings)

    def _bank_embeddings(self, phrases: Sequence[str]) -> np.ndarray:
        """Embeddings of ``phrases`` from the phrase bank recorded in the sidecar (for another vocabulary)."""
        bank = self.meta.get("phrase_bank")
        if not self.meta["embeddings_input"] or not bank or not os.path.isfile(bank):
            raise ValueError(
                f"{self.model_path} was exported with the vocabulary {self.phrases}; another vocabulary needs a model "
                "exported with --embeddings-input and the phrase embeddings (pass embeddings=, or keep the phrase bank "
                f"recorded in the sidecar, {bank!r}, where it was)"
            )
        return PhraseBank.load(bank).lookup([normalize_phrase(p) for p in phrases]).numpy()

    def set_vocabulary(self, phrases: Sequence[str], embeddings: np.ndarray) -> None:
        """Classify against ``phrases`` with ``(C, D)`` ``embeddings`` (models with an embeddings input)."""
        if not self.meta["embeddings_input"]:
            raise ValueError(
                f"{self.model_path} has its vocabulary baked in ({len(self.phrases)} phrases); re-export it with "
                "--embeddings-input to pass another vocabulary, or with --vocabulary to bake another one"
            )
        if phrases is None or embeddings is None:
            raise ValueError("pass both the phrases and their embeddings")
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape != (len(phrases), self.meta["embedding_dim"]):
            raise ValueError(
                f"embeddings must be ({len(phrases)}, {self.meta['embedding_dim']}) for {len(phrases)} phrases, "
                f"got {embeddings.shape}"
            )
        if not len(phrases):
            raise ValueError("empty vocabulary")
        self.phrases = [normalize_phrase(p) for p in phrases]
        self.embeddings = embeddings

    def run(self, image: torch.Tensor) -> List[torch.Tensor]:
        raise NotImplementedError

    def raw(self, image: torch.Tensor) -> List[torch.Tensor]:
        """Graph outputs for a pre-processed ``(3, H, W)`` image (before :func:`postprocess`)."""
        return self.run(image)

    def __call__(self, image_bgr: np.ndarray) -> Dict:
        image = preprocess(image_bgr, self.meta)
        outputs = self.run(image)
        return {"instances": postprocess(outputs, tuple(image.shape[1:]), image_bgr.shape[:2])}


class OnnxPredictor(ExportedPredictor):
    """An exported ``model.onnx`` on ONNX Runtime (CPU execution provider)."""

    def __init__(self, model_path: str, vocabulary: Union[str, Sequence[str], None] = None,
                 embeddings: Optional[np.ndarray] = None, num_threads: int = 0):
        """``num_threads``: ONNX Runtime's intra-op threads (0: its default, one per core)."""
        super().__init__(model_path, vocabulary, embeddings)
        if self.meta["format"] != "onnx":
            raise ValueError(f"{model_path} is a {self.meta['format']} export; use TorchScriptPredictor")
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ImportError("OnnxPredictor needs onnxruntime: pip install -e .[export]") from e
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])

    def run(self, image: torch.Tensor) -> List[torch.Tensor]:
        feed = {"image": image.numpy()}
        if self.meta["embeddings_input"]:
            feed["phrase_embeddings"] = self.embeddings
        return [torch.from_numpy(o) for o in self.session.run(self.meta["outputs"], feed)]


class TorchScriptPredictor(ExportedPredictor):
    """An exported ``model.ts`` (traced TorchScript) on CPU."""

    def __init__(self, model_path: str, vocabulary: Union[str, Sequence[str], None] = None,
                 embeddings: Optional[np.ndarray] = None):
        super().__init__(model_path, vocabulary, embeddings)
        if self.meta["format"] != "torchscript":
            raise ValueError(f"{model_path} is a {self.meta['format']} export; use OnnxPredictor")
        import torchvision  # noqa: F401  (registers the torchvision::nms / roi_align ops the graph calls)

        self.module = torch.jit.load(model_path, map_location="cpu").eval()

    def run(self, image: torch.Tensor) -> List[torch.Tensor]:
        inputs = (image,)
        if self.meta["embeddings_input"]:
            inputs += (torch.from_numpy(self.embeddings),)
        with torch.no_grad():
            return list(self.module(*inputs))
