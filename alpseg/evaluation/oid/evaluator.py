"""detectron2 ``DatasetEvaluator`` for Open Images instance segmentation (the challenge metric).

It turns a model's ``Instances`` (``pred_masks`` at the original image size, ``scores``,
``pred_classes`` indexing ``metadata.thing_classes``) into RLE predictions keyed by OID ImageID,
and evaluates them with :func:`alpseg.evaluation.oid.challenge.evaluate_oid_challenge` against the
challenge CSVs named in the dataset's metadata:

* ``oid_gt``: dict of paths ``boxes``, ``masks``, ``labels`` (required), ``hierarchy``,
  ``class_descriptions`` (optional);
* ``thing_mids``: the OID MID of each entry of ``thing_classes``;
* ``base_classes`` / ``novel_classes``: subsets of ``thing_classes`` (names).

Predictions are keyed by name, never by position: ``pred_classes`` index the model's test vocabulary
(``vocabulary``; from a config, ``MODEL.OPEN_VOCAB.TEST_VOCABULARY``, default the dataset's
``thing_classes``), and each vocabulary phrase is mapped to its MID through the dataset's
``thing_classes``/``thing_mids``. Any order works; a subset evaluates only the classes it names (the
GT rows of the others are dropped and counted); phrases the dataset does not have are kept out of the
metric and their predictions counted. A vocabulary that names no class of the dataset is refused.

The returned metrics follow detectron2's convention (percentages, under the key ``"oid_challenge"``);
the JSON / Markdown / plot files written to ``output_dir`` keep the challenge's fractions.
"""
from __future__ import annotations

import copy
import logging
import os
from collections import Counter, OrderedDict
from typing import Dict, List, Optional, Sequence

import numpy as np
import pycocotools.mask as mask_utils
from detectron2.config import configurable
from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm

from ..reporting import log_results, write_report
from .challenge import evaluate_oid_challenge
from .io import ImagePredictions, read_class_descriptions, read_ground_truth_csvs, write_predictions_csv

__all__ = ["OIDChallengeEvaluator", "instances_to_oid_predictions", "vocabulary_mids"]

logger = logging.getLogger(__name__)


def vocabulary_mids(vocabulary: Sequence[str], thing_classes: Sequence[str], thing_mids: Sequence[str],
                    dataset_name: str = "?") -> List[Optional[str]]:
    """The MID of each vocabulary phrase (``None`` for a phrase the dataset has no class for).

    Phrases and class names are compared after ``normalize_phrase``. A phrase given twice, or a
    vocabulary that names no class of the dataset, is an error (nothing could be scored correctly).
    """
    from alpseg.text.prompts import normalize_phrase

    by_name: Dict[str, str] = {}
    for name, mid in zip(thing_classes, thing_mids):
        by_name.setdefault(normalize_phrase(name), mid)
    phrases = [normalize_phrase(p) for p in vocabulary]
    dup = sorted({p for p in phrases if phrases.count(p) > 1})
    if dup:
        raise ValueError(f"test vocabulary names {dup[:10]} twice; predictions of those could not be told apart")
    mids = [by_name.get(p) for p in phrases]
    if not any(mids):
        raise ValueError(f"no phrase of the test vocabulary ({phrases[:5]}...) is a class of {dataset_name!r}; "
                         "set MODEL.OPEN_VOCAB.TEST_VOCABULARY to (some of) the dataset's class names, or "
                         "leave it empty to use them all")
    return mids


def instances_to_oid_predictions(instances, class_mids: Sequence[Optional[str]]) -> ImagePredictions:
    """detectron2 ``Instances`` (on any device) -> :class:`ImagePredictions` with full-size RLE masks.

    ``class_mids[pred_class]`` is the MID of a prediction; predictions whose entry is ``None`` (phrases
    the dataset has no class for) are dropped and counted in ``skipped``.
    """
    instances = instances.to("cpu")
    n = len(instances)
    if n and not instances.has("pred_masks"):
        raise ValueError("OID challenge evaluation scores masks, but the predictions have no pred_masks "
                         "(is the model's mask head switched off?)")
    classes = instances.pred_classes.numpy().astype(np.int64) if n else np.zeros(0, np.int64)
    if n and (classes.min() < 0 or classes.max() >= len(class_mids)):
        raise ValueError(f"pred_classes out of range for a vocabulary of {len(class_mids)} classes: "
                         f"{sorted(set(classes.tolist()))[:10]}")
    if n == 0:
        return ImagePredictions([], np.zeros(0), [])
    masks = instances.pred_masks.numpy()
    if masks.ndim != 3:
        raise ValueError(f"pred_masks must be (N, H, W) at the image's size, got shape {masks.shape} "
                         "(run detector_postprocess / paste the masks first)")
    if masks.dtype != np.uint8:
        masks = masks > 0.5 if masks.dtype.kind == "f" else masks.astype(bool)
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    rles = [{"size": [int(r["size"][0]), int(r["size"][1])], "counts": r["counts"]} for r in rles]
    scores = instances.scores.numpy().astype(np.float64)
    known = [i for i, c in enumerate(classes) if class_mids[c] is not None]
    skipped: Counter = Counter()
    if len(known) < n:
        skipped["predictions_of_phrases_not_in_dataset"] = n - len(known)
    return ImagePredictions([class_mids[classes[i]] for i in known], scores[known], [rles[i] for i in known],
                            skipped)


class OIDChallengeEvaluator(DatasetEvaluator):
    """Open Images challenge mask AP50 (mAP, AP50-base, AP50-novel, per class) for an OID dataset."""

    @configurable
    def __init__(self, dataset_name: str, *, output_dir: Optional[str] = None, distributed: bool = True,
                 group_of_weight: float = 1.0, write_challenge_csv: bool = False,
                 max_predictions_per_image: Optional[int] = 100, num_workers: int = 2, plot: bool = True,
                 vocabulary: Optional[Sequence[str]] = None, expand_predictions: bool = False):
        """
        Args:
            dataset_name: a registered dataset whose metadata has ``oid_gt`` and ``thing_mids``.
            output_dir: where results (JSON, Markdown, plot) and, if asked, the challenge CSV go.
            group_of_weight: 1.0 = the official ``oid_challenge_evaluation.py``; 0.0 = TF's
                ``OpenImagesInstanceSegmentationChallengeEvaluator``.
            write_challenge_csv: also write ``oid_challenge_predictions.csv`` in the challenge format.
            max_predictions_per_image: the challenge's limit (``None`` = no limit).
            num_workers: processes for the per-image matching.
            vocabulary: the phrases ``pred_classes`` index, in prediction order (default: the dataset's
                ``thing_classes``); matched to the dataset's classes by normalized name.
            expand_predictions: also report the metric with predictions copied to ancestor classes
                (under ``expanded_predictions`` and the ``*_expanded`` metrics), beside the official one.
        """
        self._dataset_name = dataset_name
        self._metadata = MetadataCatalog.get(dataset_name)
        for key in ("oid_gt", "thing_mids", "thing_classes"):
            if not hasattr(self._metadata, key):
                raise ValueError(f"dataset {dataset_name!r} has no metadata {key!r}; the OID challenge evaluator "
                                 "needs oid_gt (paths of the challenge CSVs), thing_mids and thing_classes")
        self._dataset_mids = list(self._metadata.thing_mids)
        if len(self._dataset_mids) != len(self._metadata.thing_classes):
            raise ValueError(f"{dataset_name}: {len(self._dataset_mids)} thing_mids but "
                             f"{len(self._metadata.thing_classes)} thing_classes")
        self._vocabulary = list(vocabulary) if vocabulary is not None else list(self._metadata.thing_classes)
        # MID of each vocabulary entry (None: a phrase the dataset has no class for)
        self._mids = vocabulary_mids(self._vocabulary, self._metadata.thing_classes, self._dataset_mids,
                                     dataset_name)
        self._output_dir = output_dir
        self._distributed = distributed
        self._group_of_weight = float(group_of_weight)
        self._write_csv = write_challenge_csv
        self._max_predictions = max_predictions_per_image
        self._num_workers = num_workers
        self._plot = plot
        self._expand_predictions = bool(expand_predictions)
        self._predictions: Dict[str, ImagePredictions] = {}

    @classmethod
    def from_config(cls, cfg, dataset_name: str, output_dir: Optional[str] = None):
        from alpseg.text.vocabulary import build_vocabulary

        spec = cfg.MODEL.OPEN_VOCAB.TEST_VOCABULARY.strip()
        return {
            # the vocabulary the model classifies against (alpseg.modeling.vocabulary_mixin loads the same)
            "vocabulary": build_vocabulary(spec, dataset_name) if spec else None,
            "dataset_name": dataset_name,
            "output_dir": output_dir,
            "group_of_weight": cfg.TEST.OID_GROUP_OF_WEIGHT,
            "write_challenge_csv": cfg.TEST.WRITE_CHALLENGE_CSV,
            "expand_predictions": cfg.TEST.OID_EXPAND_PREDICTIONS,
            "max_predictions_per_image": cfg.TEST.DETECTIONS_PER_IMAGE or None,
        }

    def reset(self) -> None:
        self._predictions = {}

    def process(self, inputs, outputs) -> None:
        for inp, out in zip(inputs, outputs):
            image_id = str(inp["image_id"])
            self._predictions[image_id] = instances_to_oid_predictions(out["instances"], self._mids)

    def _names_to_mids(self, names) -> List[str]:
        """MIDs of dataset class names, restricted to the classes the vocabulary evaluates."""
        index = {n: m for n, m in zip(self._metadata.thing_classes, self._dataset_mids)}
        missing = [n for n in names if n not in index]
        if missing:
            raise ValueError(f"{self._dataset_name}: base/novel classes not in thing_classes: {missing[:10]}")
        evaluated = set(self._mids)
        return [index[n] for n in names if index[n] in evaluated]

    def evaluate(self):
        if self._distributed:
            comm.synchronize()
            parts = comm.gather(self._predictions, dst=0)
            if not comm.is_main_process():
                return {}
            predictions: Dict[str, ImagePredictions] = {}
            for p in parts:
                predictions.update(p)
        else:
            predictions = self._predictions
        if not predictions:
            logger.warning("[OIDChallengeEvaluator] did not receive valid predictions.")
            return {}
        if self._output_dir and self._write_csv:
            path = os.path.join(self._output_dir, "oid_challenge_predictions.csv")
            n = write_predictions_csv(path, predictions)
            logger.info("wrote %d predictions in the challenge format to %s", n, path)

        paths = self._metadata.oid_gt
        gt = read_ground_truth_csvs(paths.get("boxes"), paths.get("masks"), paths.get("labels"))
        hierarchy = paths.get("hierarchy") or None
        if hierarchy and not os.path.isfile(hierarchy):
            logger.warning("%s: hierarchy file %s not found; evaluating WITHOUT hierarchical expansion of the "
                           "ground truth (parent classes then have no GT of their children)", self._dataset_name,
                           hierarchy)
            hierarchy = None
        base = self._names_to_mids(getattr(self._metadata, "base_classes", None) or [])
        novel = self._names_to_mids(getattr(self._metadata, "novel_classes", None) or [])
        results = evaluate_oid_challenge(
            gt, predictions, group_of_weight=self._group_of_weight, hierarchy=hierarchy,
            base_classes=base if (base or novel) else None, novel_classes=novel or None,
            class_mids=[m for m in self._mids if m is not None],
            max_predictions_per_image=self._max_predictions, num_workers=self._num_workers,
            progress=comm.is_main_process(), expand_predictions=self._expand_predictions and hierarchy is not None)
        names = dict(zip(self._dataset_mids, self._metadata.thing_classes))
        if paths.get("class_descriptions") and os.path.isfile(paths["class_descriptions"]):
            display = read_class_descriptions(paths["class_descriptions"])
            names = {m: display.get(m, n) for m, n in names.items()}
        results["class_names"] = {m: names.get(m, m) for m in results["per_class"]}
        results["dataset"] = self._dataset_name
        results["vocabulary_size"] = len(self._vocabulary)
        results["vocabulary_phrases_not_in_dataset"] = [p for p, m in zip(self._vocabulary, self._mids) if m is None]
        results["hierarchy"] = hierarchy
        log_results(results, logger, title=f"Open Images challenge mask AP50 on {self._dataset_name}")
        if self._output_dir:
            write_report(results, self._output_dir, class_names=names, base_classes=base,
                         title=f"Mask AP50 per category, {self._dataset_name}", plot=self._plot)

        def pct(x):
            return float("nan") if x is None else 100.0 * x

        metrics = OrderedDict(AP50=pct(results["mAP"]))
        for key, name in (("AP50_base", "AP50-base"), ("AP50_novel", "AP50-novel")):
            if key in results:
                metrics[name] = pct(results[key])
        # further summaries keep their JSON names: "AP50-<x>" is detectron2's per-category pattern,
        # which readers of these metrics (e.g. alpseg.app.results) take as a class name
        for key in ("AP50_novel_with_base_ancestor", "AP50_novel_without_base_ancestor"):
            if key in results:
                metrics[key] = pct(results[key])
        expanded = results.get("expanded_predictions") or {}
        for key, name in (("mAP", "AP50"), ("AP50_base", "AP50_base"), ("AP50_novel", "AP50_novel")):
            if key in expanded:
                metrics[f"{name}_expanded"] = pct(expanded[key])
        for mid, ap in results["per_class"].items():
            metrics[f"AP50-{names.get(mid, mid)}"] = pct(ap)
        self._last_results = copy.deepcopy(results)
        return OrderedDict(oid_challenge=metrics)
