"""PASCAL VOC2007 linear SVM classification on frozen features (VirTex sec. 4.1 / app. A.1).

Protocol: 2048-d global-average-pooled res5 features of the frozen backbone (shorter edge 256,
center crop 224, ImageNet normalisation), L2-normalised; per class a scikit-learn ``LinearSVC``
(LIBLINEAR, squared hinge, L2, dual, ``max_iter=2000``, ``tol=1e-4``, ``class_weight={1: 2, -1: 1}``)
for each cost in {0.01, 0.1, 1, 10}; the cost with the best mean average precision over a 3-fold
stratified cross-validation on trainval is refit on all of trainval. Training labels come from the
devkit's per-class files; *difficult* images (label 0) are negatives in training and left out of
the test AP. The test AP is scikit-learn's ``average_precision_score`` (what VirTex's
``clf_voc07.py`` reports, hence the published rows); VOC's all-point AP (area under the monotone
precision envelope) is reported beside it as ``mAP_voc_envelope``. Both are means over the 20
classes, in percent.

Choices where the papers are silent (documented in docs/transfer.md): features are L2-normalised
(as in the public SVM benchmarks these papers follow), LIBLINEAR's shuffling is seeded
(``random_state``) so that a re-run gives the same numbers, and ties of the CV score pick the
smaller cost.

Features are cached in shards and each fitted SVM in a JSON file, all keyed by a fingerprint of
the weights and the settings, so a re-run costs nothing and an interrupted run resumes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import xml.etree.ElementTree as ET
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from sklearn.metrics import average_precision_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.svm import LinearSVC
from detectron2.data.datasets.pascal_voc import CLASS_NAMES

from alpseg.utils.io import atomic_open, atomic_write_json
from alpseg.utils.progress import progress_bar

from .backbone import PooledResNet, build_resnet_trunk
from .images import eval_transform, extract_pooled_features, weights_fingerprint

__all__ = [
    "VOC_CLASSES",
    "VOC07SVMSettings",
    "read_voc_split",
    "labels_from_annotation_trees",
    "voc_average_precision",
    "sklearn_average_precision",
    "fit_class_svm",
    "cached_features",
    "run_voc07_svm",
]

logger = logging.getLogger(__name__)

#: The 20 classes in the devkit's order (detectron2's list).
VOC_CLASSES: Tuple[str, ...] = tuple(CLASS_NAMES)


@dataclasses.dataclass
class VOC07SVMSettings:
    """Protocol parameters (defaults = VirTex A.1); sizes shrink for tests only."""

    costs: Tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)
    cv_folds: int = 3
    positive_weight: float = 2.0  # class_weight {1: positive_weight, -1: 1}
    max_iter: int = 2000
    tol: float = 1e-4
    l2_normalize: bool = True
    resize: int = 256
    crop: int = 224
    batch_size: int = 64
    num_workers: int = 4
    device: str = "auto"
    shard_size: int = 1000  # images per cached feature shard (the unit of resumption)
    seed: int = 0  # LIBLINEAR's shuffling
    n_jobs: int = 1  # classes fitted in parallel


# ------------------------------------------------------------------------------------------------
# dataset


def read_voc_split(voc_root: str, split: str) -> Tuple[List[str], np.ndarray]:
    """Image ids of ``ImageSets/Main/<split>.txt`` and their (N, 20) labels in {1, 0, -1}.

    Labels come from the per-class ``<class>_<split>.txt`` files of the devkit; where such a file is
    missing they are derived from ``Annotations/*.xml`` the way the devkit derives them (1: a
    non-difficult instance, 0: only difficult ones, -1: none).
    """
    main = os.path.join(voc_root, "ImageSets", "Main")
    ids_file = os.path.join(main, f"{split}.txt")
    if not os.path.isfile(ids_file):
        raise FileNotFoundError(f"VOC split list {ids_file} does not exist")
    with open(ids_file, encoding="utf-8") as f:
        ids = [line.split()[0] for line in f if line.strip()]
    if not ids:
        raise ValueError(f"{ids_file} lists no images")
    index = {image_id: i for i, image_id in enumerate(ids)}
    labels = np.full((len(ids), len(VOC_CLASSES)), -2, np.int64)
    derived: Optional[np.ndarray] = None
    for c, cls in enumerate(VOC_CLASSES):
        path = os.path.join(main, f"{cls}_{split}.txt")
        if not os.path.isfile(path):
            if derived is None:
                logger.warning("%s missing: deriving %s labels from Annotations/*.xml", path, split)
                derived = _labels_from_annotations(voc_root, ids)
            labels[:, c] = derived[:, c]
            continue
        with open(path, encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != 2 or parts[0] not in index or parts[1] not in {"1", "0", "-1"}:
                    raise ValueError(f"{path}: malformed line {line.rstrip()!r}")
                labels[index[parts[0]], c] = int(parts[1])
        unlabeled = np.flatnonzero(labels[:, c] == -2)
        if unlabeled.size:
            raise ValueError(f"{path} has no label for {len(unlabeled)} images of {split}, e.g. {ids[unlabeled[0]]}")
    return ids, labels


def _labels_from_annotations(voc_root: str, ids: Sequence[str]) -> np.ndarray:
    paths = [os.path.join(voc_root, "Annotations", f"{image_id}.xml") for image_id in ids]
    return labels_from_annotation_trees([ET.parse(p).getroot() for p in paths], paths)


def labels_from_annotation_trees(roots: Sequence[ET.Element], names: Optional[Sequence[str]] = None) -> np.ndarray:
    """(N, 20) devkit labels of parsed VOC annotations: 1 if a non-difficult instance of the class
    is present, 0 if only difficult ones, -1 if none."""
    labels = np.full((len(roots), len(VOC_CLASSES)), -1, np.int64)
    col = {c: i for i, c in enumerate(VOC_CLASSES)}
    for r, root in enumerate(roots):
        for obj in root.iter("object"):
            name = (obj.findtext("name") or "").strip()
            if name not in col:
                where = names[r] if names is not None else f"annotation {r}"
                raise ValueError(f"{where}: unknown VOC class {name!r}")
            difficult = (obj.findtext("difficult") or "0").strip() == "1"
            labels[r, col[name]] = max(labels[r, col[name]], 0 if difficult else 1)
    return labels


# ------------------------------------------------------------------------------------------------
# metric and classifiers


def voc_average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """All-point VOC AP of ``scores`` for binary ``labels`` (> 0 positive); ties keep input order."""
    scores = np.asarray(scores, np.float64)
    positive = np.asarray(labels) > 0
    n_pos = int(positive.sum())
    if n_pos == 0:
        raise ValueError("AP is undefined without positives")
    hits = positive[np.argsort(-scores, kind="stable")]
    tp = np.cumsum(hits)
    fp = np.cumsum(~hits)
    recall = np.concatenate([[0.0], tp / n_pos, [1.0]])
    precision = np.concatenate([[0.0], tp / (tp + fp), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def sklearn_average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """scikit-learn's ``average_precision_score`` (step-wise, no interpolation) for ``labels`` > 0:
    the test metric of VirTex's ``clf_voc07.py``, whose numbers fill the published VOC07 rows."""
    positive = np.asarray(labels) > 0
    if not positive.any():
        raise ValueError("AP is undefined without positives")
    return float(average_precision_score(positive, np.asarray(scores, np.float64)))


def _svm(cost: float, s: VOC07SVMSettings) -> LinearSVC:
    return LinearSVC(C=cost, penalty="l2", loss="squared_hinge", dual=True, max_iter=s.max_iter, tol=s.tol,
                     class_weight={1: s.positive_weight, -1: 1}, random_state=s.seed)


def fit_class_svm(features: np.ndarray, labels: np.ndarray, s: VOC07SVMSettings) -> Dict[str, Any]:
    """Choose the cost by stratified k-fold CV (mean AP) and refit on everything.

    ``labels`` are {1, -1} (difficult already turned negative). Returns the chosen cost, the CV AP
    per cost and the refit hyperplane.
    """
    if int((labels > 0).sum()) < s.cv_folds:
        raise ValueError(f"need at least {s.cv_folds} positives for {s.cv_folds}-fold CV, got {(labels > 0).sum()}")
    folds = StratifiedKFold(n_splits=s.cv_folds)
    cv_ap: Dict[str, float] = {}
    for cost in s.costs:
        ap = cross_val_score(_svm(cost, s), features, labels, cv=folds, scoring="average_precision")
        cv_ap[repr(float(cost))] = float(ap.mean())
    best = max(s.costs, key=lambda c: (cv_ap[repr(float(c))], -c))
    clf = _svm(best, s).fit(features, labels)
    return {"C": float(best), "cv_ap": cv_ap, "coef": clf.coef_.ravel().astype(float).tolist(),
            "intercept": float(clf.intercept_[0])}


# ------------------------------------------------------------------------------------------------
# caching


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def cached_features(
    model: torch.nn.Module, paths: Sequence[str], cache_dir: str, key: str, s: VOC07SVMSettings, desc: str
) -> np.ndarray:
    """Features of ``paths`` computed shard by shard into ``cache_dir`` (reused when ``key`` and the
    image list match; stale caches are removed)."""
    meta = {"key": key, "paths": _digest(list(paths)), "n": len(paths), "shard_size": s.shard_size}
    meta_path = os.path.join(cache_dir, "meta.json")
    if os.path.isdir(cache_dir):
        try:
            with open(meta_path, encoding="utf-8") as f:
                same = json.load(f) == meta
        except (OSError, ValueError):
            same = False
        if not same:
            shutil.rmtree(cache_dir)
    os.makedirs(cache_dir, exist_ok=True)
    atomic_write_json(meta_path, meta)
    transform = eval_transform(s.resize, s.crop)
    shards = []
    starts = range(0, len(paths), s.shard_size)
    for k, start in enumerate(progress_bar(starts, desc=desc, unit="shard", disable=len(starts) < 2)):
        path = os.path.join(cache_dir, f"shard_{k:05d}.npy")
        chunk = paths[start:start + s.shard_size]
        if os.path.isfile(path):
            feats = np.load(path)
            if feats.shape[0] == len(chunk):
                shards.append(feats)
                continue
        feats = extract_pooled_features(model, chunk, transform, s.batch_size, s.num_workers, s.device,
                                        desc=f"{desc} {k + 1}/{len(starts)}")
        with atomic_open(path, "wb") as f:
            np.save(f, feats)
        shards.append(feats)
    return np.concatenate(shards)


def _l2(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-10)


# ------------------------------------------------------------------------------------------------
# the task


def run_voc07_svm(
    weights: Mapping[str, torch.Tensor],
    voc_root: str,
    output_dir: str,
    settings: Optional[VOC07SVMSettings] = None,
    arch: str = "resnet50",
) -> Dict[str, Any]:
    """Run the whole protocol; returns ``{"metrics": {"mAP": ...}, "per_class": {...}, ...}``."""
    s = settings or VOC07SVMSettings()
    wkey = weights_fingerprint(weights)
    feat_key = _digest({"weights": wkey, "arch": arch, "resize": s.resize, "crop": s.crop})
    model = PooledResNet(build_resnet_trunk(weights, arch))
    data = {}
    for split in ("trainval", "test"):
        ids, labels = read_voc_split(voc_root, split)
        paths = [os.path.join(voc_root, "JPEGImages", f"{i}.jpg") for i in ids]
        feats = cached_features(model, paths, os.path.join(output_dir, "features", split), feat_key, s,
                                desc=f"VOC07 {split} features")
        data[split] = (_l2(feats) if s.l2_normalize else feats, labels)
    svm_key = _digest({"features": feat_key, "settings": dataclasses.asdict(s) | {
        "batch_size": None, "num_workers": None, "device": None, "n_jobs": None, "shard_size": None}})
    svm_dir = os.path.join(output_dir, "svms")
    os.makedirs(svm_dir, exist_ok=True)
    x_train, y_train = data["trainval"]
    x_test, y_test = data["test"]

    def load_or_fit(c: int) -> Dict[str, Any]:
        path = os.path.join(svm_dir, f"{VOC_CLASSES[c]}.json")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                cached = json.load(f)
            if cached.get("key") == svm_key:
                return cached
        y = np.where(y_train[:, c] == 1, 1, -1)  # difficult (0) counts as negative in training
        fitted = fit_class_svm(x_train, y, s) | {"key": svm_key}
        atomic_write_json(path, fitted)
        return fitted

    if s.n_jobs == 1:
        svms = [load_or_fit(c) for c in progress_bar(range(len(VOC_CLASSES)), desc="VOC07 SVMs", unit="class")]
    else:
        from joblib import Parallel, delayed

        svms = Parallel(n_jobs=s.n_jobs)(delayed(load_or_fit)(c) for c in range(len(VOC_CLASSES)))
    per_class: Dict[str, float] = {}
    per_class_envelope: Dict[str, float] = {}
    for c, svm in enumerate(svms):
        keep = y_test[:, c] != 0  # difficult images are left out of the test AP
        scores = x_test[keep] @ np.asarray(svm["coef"]) + svm["intercept"]
        per_class[VOC_CLASSES[c]] = 100.0 * sklearn_average_precision(scores, y_test[keep, c])
        per_class_envelope[VOC_CLASSES[c]] = 100.0 * voc_average_precision(scores, y_test[keep, c])
    return {
        "metrics": {"mAP": float(np.mean(list(per_class.values()))),
                    "mAP_voc_envelope": float(np.mean(list(per_class_envelope.values())))},
        "per_class_AP": per_class,
        "per_class_AP_voc_envelope": per_class_envelope,
        "best_C": {VOC_CLASSES[c]: svm["C"] for c, svm in enumerate(svms)},
        "cv_AP": {VOC_CLASSES[c]: svm["cv_ap"] for c, svm in enumerate(svms)},
        "num_images": {"trainval": int(len(y_train)), "test": int(len(y_test))},
        "weights_fingerprint": wkey,
    }
