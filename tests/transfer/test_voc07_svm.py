"""VOC07 SVM protocol: end to end on the miniature VOC tree, checked against an independent fit."""
from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.svm import LinearSVC

from alpseg.transfer import voc07_svm
from alpseg.transfer.images import eval_transform
from alpseg.transfer.voc07_svm import (VOC07SVMSettings, read_voc_split, run_voc07_svm, sklearn_average_precision,
                                       voc_average_precision)

SETTINGS = VOC07SVMSettings(resize=64, crop=56, batch_size=30, num_workers=0, device="cpu", shard_size=25)


def test_ap_by_hand():
    # ranks: TP, FP, TP, FP -> precision 1 at recall 1/2, 2/3 at recall 1
    assert voc_average_precision(np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, -1, 1, -1])) == pytest.approx(5 / 6)
    # the envelope: a later, higher precision lifts the earlier recall level
    assert voc_average_precision(np.array([4, 3, 2, 1.0]), np.array([-1, 1, 1, 1])) == pytest.approx(3 / 4)
    with pytest.raises(ValueError):
        voc_average_precision(np.array([1.0]), np.array([-1]))


def test_reference_code_ap_by_hand():
    """VirTex's metric (scikit-learn's step-wise AP) has no envelope: FP, TP, TP, TP gives the mean of
    the precisions at each positive, (1/2 + 2/3 + 3/4) / 3, where the envelope AP gives 3/4."""
    assert sklearn_average_precision(np.array([4, 3, 2, 1.0]), np.array([-1, 1, 1, 1])) == pytest.approx(23 / 36)
    assert sklearn_average_precision(np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, -1, 1, -1])) == pytest.approx(5 / 6)
    # tied scores form one threshold: TP and FP tied first -> precision 1/2 at recall 1
    assert sklearn_average_precision(np.array([1.0, 1.0]), np.array([1, -1])) == pytest.approx(1 / 2)
    with pytest.raises(ValueError):
        sklearn_average_precision(np.array([1.0]), np.array([-1]))


def _independent_ap(scores, positive):
    """Mean over positives of the best precision at that positive's rank or later."""
    order = np.argsort(-scores, kind="stable")
    hits = positive[order]
    ranks = np.flatnonzero(hits) + 1
    precisions = np.arange(1, len(ranks) + 1) / ranks
    return float(np.mean([precisions[k:].max() for k in range(len(ranks))]))


def _stepwise_ap(scores, positive):
    """VirTex's test metric written out: over distinct score thresholds (high to low), the sum of
    recall increments times the precision at that threshold (tied scores enter together)."""
    ap, tp, fp, last_recall = 0.0, 0, 0, 0.0
    for t in np.unique(scores)[::-1]:
        at = scores == t
        tp += int(positive[at].sum())
        fp += int((~positive[at]).sum())
        recall = tp / positive.sum()
        ap += (recall - last_recall) * tp / (tp + fp)
        last_recall = recall
    return ap


def _features(out_dir, split):
    shards = sorted(glob.glob(os.path.join(out_dir, "features", split, "shard_*.npy")))
    x = np.concatenate([np.load(p) for p in shards])
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-10)


@pytest.fixture(scope="module")
def svm_run(mini_root, tv_weights, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("svm"))
    return out, run_voc07_svm(tv_weights, os.path.join(mini_root, "VOC2007"), out, SETTINGS)


def test_map_equals_independent_computation(svm_run, mini_root):
    out, result = svm_run
    voc = os.path.join(mini_root, "VOC2007")
    _, y_train = read_voc_split(voc, "trainval")
    _, y_test = read_voc_split(voc, "test")
    assert (y_test == 0).any(), "the miniature test split should exercise the difficult rule"
    x_train, x_test = _features(out, "trainval"), _features(out, "test")
    assert x_train.shape == (60, 2048) and x_test.shape == (60, 2048)
    aps, envelope_aps = [], []
    for c, cls in enumerate(voc07_svm.VOC_CLASSES):
        svc = LinearSVC(dual=True, max_iter=2000, tol=1e-4, class_weight={1: 2, -1: 1}, random_state=0)
        grid = GridSearchCV(svc, {"C": [0.01, 0.1, 1.0, 10.0]}, cv=StratifiedKFold(3), scoring="average_precision")
        grid.fit(x_train, np.where(y_train[:, c] == 1, 1, -1))
        assert grid.best_params_["C"] == result["best_C"][cls]
        keep = y_test[:, c] != 0
        scores = grid.decision_function(x_test[keep])
        envelope_aps.append(100 * _independent_ap(scores, y_test[keep, c] == 1))
        assert result["per_class_AP_voc_envelope"][cls] == pytest.approx(envelope_aps[-1], abs=1e-6)
        aps.append(100 * _stepwise_ap(scores, y_test[keep, c] == 1))
        assert result["per_class_AP"][cls] == pytest.approx(aps[-1], abs=1e-6)
        assert aps[-1] == pytest.approx(100 * average_precision_score(y_test[keep, c] == 1, scores), abs=1e-6)
    # the default (published rows') metric is the reference code's; the envelope AP is reported beside it
    assert result["metrics"]["mAP"] == pytest.approx(np.mean(aps), abs=1e-6)
    assert result["metrics"]["mAP_voc_envelope"] == pytest.approx(np.mean(envelope_aps), abs=1e-6)
    assert result["metrics"]["mAP"] != pytest.approx(result["metrics"]["mAP_voc_envelope"], abs=1e-3)
    assert 0 < result["metrics"]["mAP"] <= 100


def test_features_are_torchvision_pooled_layer4(svm_run, mini_root, resnet50_tv):
    out, _ = svm_run
    ids, _ = read_voc_split(os.path.join(mini_root, "VOC2007"), "test")
    from PIL import Image

    tf = eval_transform(64, 56)
    batch = torch.stack([tf(Image.open(os.path.join(mini_root, "VOC2007", "JPEGImages", f"{i}.jpg")).convert("RGB"))
                         for i in ids[:4]])
    m = resnet50_tv
    with torch.no_grad():
        x = m.maxpool(m.relu(m.bn1(m.conv1(batch))))
        want = m.layer4(m.layer3(m.layer2(m.layer1(x)))).mean(dim=(2, 3)).numpy()
    got = np.load(os.path.join(out, "features", "test", "shard_00000.npy"))[:4]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_rerun_uses_caches(svm_run, mini_root, tv_weights, monkeypatch):
    out, result = svm_run

    def boom(*a, **k):
        raise AssertionError("cache not used")

    monkeypatch.setattr(voc07_svm, "extract_pooled_features", boom)
    monkeypatch.setattr(voc07_svm, "fit_class_svm", boom)
    again = run_voc07_svm(tv_weights, os.path.join(mini_root, "VOC2007"), out, SETTINGS)
    assert again == result


def test_partial_feature_cache_resumes(svm_run, mini_root, tv_weights, monkeypatch, tmp_path):
    out, result = svm_run
    # keep only the first trainval shard: the run must recompute exactly the other shards
    import shutil

    shutil.copytree(out, tmp_path / "o")
    for p in glob.glob(str(tmp_path / "o" / "features" / "*" / "shard_*.npy")):
        if not p.endswith(os.path.join("trainval", "shard_00000.npy")):
            os.remove(p)
    calls = []
    real = voc07_svm.extract_pooled_features
    monkeypatch.setattr(voc07_svm, "extract_pooled_features", lambda m, paths, *a, **k: calls.append(len(paths)) or real(m, paths, *a, **k))
    again = run_voc07_svm(tv_weights, os.path.join(mini_root, "VOC2007"), str(tmp_path / "o"), SETTINGS)
    assert calls == [25, 10, 25, 25, 10]
    assert again["metrics"]["mAP"] == pytest.approx(result["metrics"]["mAP"], abs=1e-6)


def test_bad_label_file_is_a_clear_error(tmp_path, mini_root):
    import shutil

    voc = tmp_path / "VOC2007"
    shutil.copytree(os.path.join(mini_root, "VOC2007", "ImageSets"), voc / "ImageSets")
    with open(voc / "ImageSets" / "Main" / "dog_test.txt", "a") as f:
        f.write("999999 1\n")
    with pytest.raises(ValueError, match="dog_test.txt: malformed line '999999 1'"):
        read_voc_split(str(voc), "test")
