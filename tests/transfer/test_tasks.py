"""The task registry: dataclass instances (no string dispatch), their settings and files, old import paths."""
from __future__ import annotations

import dataclasses
import importlib
import sys
import warnings

import pytest

from alpseg.transfer.tasks import (DEFAULT_TASKS, TASKS, ClassificationTask, Detectron2Task, SuiteContext,
                                   VOC07SVMTask, check_arch)


def _ctx(**overrides):
    return SuiteContext(backbone="b.pth", weights={}, backbone_pkl="b.pkl", fingerprint="f", output_dir="o",
                        datasets_root="/d", overrides=overrides, d2_opts=("SOLVER.MAX_ITER", "2"))


def test_every_task_is_a_dataclass_of_its_kind():
    kinds = {name: type(task) for name, task in TASKS.items()}
    assert kinds["voc07_svm"] is VOC07SVMTask
    assert kinds["in1k_linear"] is kinds["inat18"] is ClassificationTask
    assert {n for n, k in kinds.items() if k is Detectron2Task} == {
        "coco_instance", "lvis_instance", "lvis_instance_frozenbn", "voc_detection",
        "coco_limited_10", "coco_limited_20", "coco_limited_50", "coco_limited_100"}
    assert all(dataclasses.is_dataclass(t) for t in TASKS.values())
    assert "lvis_instance_frozenbn" not in DEFAULT_TASKS and len(DEFAULT_TASKS) == len(TASKS) - 1


def test_settings_and_required_files_of_each_kind():
    ctx = _ctx(voc07_svm={"crop": 56, "costs": [1.0]}, inat18={"epochs": 3}, coco_limited_10={"SOLVER.GAMMA": 0.01})
    assert TASKS["voc07_svm"].settings(ctx)["crop"] == 56 and TASKS["voc07_svm"].settings(ctx)["costs"] == (1.0,)
    inat = TASKS["inat18"].settings(ctx)
    assert (inat["epochs"], inat["base_lr"], inat["lr_steps"]) == (3, 0.025, (70, 90))
    assert TASKS["in1k_linear"].settings(ctx)["base_lr"] == 0.3
    assert TASKS["coco_limited_10"].settings(ctx) == {"config": "coco_limited_mask_rcnn_R_50_C4_2x.yaml",
                                                       "percent": 10.0, "opts": ["SOLVER.MAX_ITER", "2", "SOLVER.GAMMA",
                                                                                 "0.01"]}
    assert TASKS["inat18"].required("/d") == ["/d/inat2018/train2018.json", "/d/inat2018/val2018.json"]
    assert TASKS["voc07_svm"].required("/d")[0] == "/d/VOC2007/ImageSets/Main/trainval.txt"
    assert "/d/lvis/lvis_v1_val.json" in TASKS["lvis_instance"].required("/d")
    with pytest.raises(KeyError, match=r"in1k_linear: unknown settings \['epoch'\]"):
        TASKS["in1k_linear"].settings(_ctx(in1k_linear={"epoch": 1}))
    assert check_arch("resnet101") == "resnet101"


@pytest.mark.parametrize("old,new,name", [("alpseg.transfer.modeling", "alpseg.transfer.roi_heads",
                                           "Res5ROIHeadsExtraNorm"),
                                          ("alpseg.transfer.datasets", "alpseg.transfer.builtin_datasets",
                                           "subset_image_ids")])
def test_old_module_paths_still_import_with_a_deprecation_warning(old, new, name):
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)
    assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message) for w in caught)
