"""The transfer suite: a registry of tasks, per-task resumption, and one results table.

:func:`run_suite` converts the backbone once (failing, with the full key report, if it is
incomplete), then runs each chosen task in ``<output>/<task>/``. A task whose dataset is absent is
recorded as skipped with every expected path, not run; a task that raises is recorded as failed and
the others still run. A finished task leaves ``result.json`` (its done-marker, holding the backbone
fingerprint and the task's settings); with ``resume`` such a task is skipped when both match, and
an unfinished one continues from its own checkpoints. The suite writes ``results.json`` and
``results.md``: the published rows of ``resources/references.json`` (VirTex, LocTex) beside the new
backbone's row, one column per headline metric of the tasks run.
"""
from __future__ import annotations

import ast
import dataclasses
import json
import logging
import math
import os
import traceback
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from alpseg.utils.io import atomic_write, atomic_write_json

from .checkpoints import convert_checkpoint, save_detectron2_pkl
from .images import weights_fingerprint

__all__ = ["TransferTask", "SuiteContext", "TASKS", "DEFAULT_TASKS", "register_task", "run_suite",
           "parse_task_overrides", "load_references", "results_table"]

logger = logging.getLogger(__name__)

RESULT_FILE = "result.json"
REFERENCES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "resources", "references.json")


@dataclasses.dataclass
class SuiteContext:
    """What every task gets: the converted backbone and where to read and write."""

    backbone: str  # the checkpoint given by the user
    weights: Dict[str, torch.Tensor]  # detectron2-named trunk tensors
    backbone_pkl: str  # the same, as a detectron2 pkl (for the detectron2 tasks)
    fingerprint: str
    output_dir: str
    datasets_root: str
    num_gpus: int = 1
    resume: bool = False
    arch: str = "resnet50"
    d2_opts: Tuple[str, ...] = ()  # KEY VALUE overrides for every detectron2 task
    overrides: Dict[str, Dict[str, Any]] = dataclasses.field(default_factory=dict)  # task -> {field: value}


@dataclasses.dataclass
class TransferTask:
    """One protocol: the files it needs, how to run it, and its headline columns."""

    name: str
    title: str
    required: Callable[[str], List[str]]  # datasets root -> expected paths
    run: Callable[["TransferTask", SuiteContext, str], Dict[str, Any]]  # (task, ctx, task dir) -> result
    columns: Tuple[Tuple[str, str], ...]  # (metric key in result["metrics"], column label)
    settings: Callable[[SuiteContext], Dict[str, Any]] = lambda ctx: {}  # recorded with the result


TASKS: "OrderedDict[str, TransferTask]" = OrderedDict()


def register_task(task: TransferTask) -> TransferTask:
    if task.name in TASKS:
        raise KeyError(f"transfer task {task.name!r} is already registered")
    TASKS[task.name] = task
    return task


# ------------------------------------------------------------------------------------------------
# overrides


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_task_overrides(items: Sequence[str]) -> Dict[str, Dict[str, Any]]:
    """``["voc07_svm.crop=56", "coco_instance.SOLVER.MAX_ITER=2"]`` -> ``{task: {key: value}}``."""
    out: Dict[str, Dict[str, Any]] = {}
    for item in items:
        head, sep, value = item.partition("=")
        task, dot, key = head.partition(".")
        if not sep or not dot or not key:
            raise ValueError(f"override {item!r} is not TASK.KEY=VALUE")
        if task not in TASKS:
            raise KeyError(f"override {item!r}: unknown task {task!r}; tasks: {', '.join(TASKS)}")
        out.setdefault(task, {})[key] = _literal(value)
    return out


def _dataclass_with(cls_or_obj: Any, overrides: Mapping[str, Any], task: str) -> Any:
    names = {f.name for f in dataclasses.fields(cls_or_obj)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise KeyError(f"{task}: unknown settings {unknown}; known: {sorted(names)}")
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return dataclasses.replace(cls_or_obj, **fixed)


# ------------------------------------------------------------------------------------------------
# the tasks


def _paths(*rel: str) -> Callable[[str], List[str]]:
    return lambda root: [os.path.join(root, r) for r in rel]


def _voc07_settings(ctx: SuiteContext):
    from .voc07_svm import VOC07SVMSettings

    return _dataclass_with(VOC07SVMSettings(), ctx.overrides.get("voc07_svm", {}), "voc07_svm")


def _run_voc07(task: TransferTask, ctx: SuiteContext, out: str) -> Dict[str, Any]:
    from .voc07_svm import run_voc07_svm

    return run_voc07_svm(ctx.weights, os.path.join(ctx.datasets_root, "VOC2007"), out, _voc07_settings(ctx), ctx.arch)


def _classification(kind: str) -> Tuple[Callable, Callable]:
    def settings(ctx: SuiteContext):
        if kind == "in1k_linear":
            from .linear_probe import linear_probe_settings as make
        else:
            from .inat import inat_settings as make
        return _dataclass_with(make(), ctx.overrides.get(kind, {}), kind)

    def run(task: TransferTask, ctx: SuiteContext, out: str) -> Dict[str, Any]:
        if kind == "in1k_linear":
            from .linear_probe import run_linear_probe as fn
            data = os.path.join(ctx.datasets_root, "imagenet")
        else:
            from .inat import run_inat as fn
            data = os.path.join(ctx.datasets_root, "inat2018")
        kwargs = dict(weights=ctx.weights, output_dir=out, settings=settings(ctx), arch=ctx.arch, resume=ctx.resume)
        kwargs["imagenet_root" if kind == "in1k_linear" else "inat_root"] = data
        return _launch_collect(fn, kwargs, ctx.num_gpus, os.path.join(out, "launch_result.json"))

    return settings, run


def _launch_entry(fn: Callable, kwargs: Dict[str, Any], path: str) -> None:
    from detectron2.utils import comm

    result = fn(**kwargs)
    if comm.is_main_process():
        _write_json(path, result)


def _launch_collect(fn: Callable, kwargs: Dict[str, Any], num_gpus: int, path: str) -> Dict[str, Any]:
    """Run ``fn`` in this process, or in ``num_gpus`` processes under detectron2's ``launch``."""
    gpus = min(num_gpus, torch.cuda.device_count())
    if gpus <= 1:
        return fn(**kwargs)
    from detectron2.engine import launch

    launch(_launch_entry, gpus, dist_url="auto", args=(fn, kwargs, path))
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _detectron2(config: str, percent: Optional[float] = None) -> Tuple[Callable, Callable, Callable]:
    def spec():
        from .finetune import Detectron2TaskSpec

        return Detectron2TaskSpec(config, subset_percent=percent, subset_seed=0)

    def opts(task: TransferTask, ctx: SuiteContext) -> List[str]:
        own = [x for k, v in ctx.overrides.get(task.name, {}).items() for x in (k, str(v))]
        return list(ctx.d2_opts) + own

    def required(root: str) -> List[str]:
        from .datasets import required_paths
        from .finetune import _dataset_names, build_task_cfg

        s = spec()
        cfg = build_task_cfg(s, "", "", use_gpu=False)
        return [p for name in _dataset_names(cfg, s) for p in required_paths(name, root)]

    def run(task: TransferTask, ctx: SuiteContext, out: str) -> Dict[str, Any]:
        from .finetune import run_detectron2_task

        return run_detectron2_task(spec(), ctx.backbone_pkl, out, ctx.datasets_root, opts(task, ctx),
                                   num_gpus=ctx.num_gpus, resume=ctx.resume)

    return required, run, lambda task, ctx: {"config": config, "percent": percent, "opts": opts(task, ctx)}


def _register_all() -> None:
    voc = ("VOC2007/ImageSets/Main/trainval.txt", "VOC2007/ImageSets/Main/test.txt", "VOC2007/JPEGImages",
           "VOC2007/Annotations")
    register_task(TransferTask("voc07_svm", "VOC07 SVM", _paths(*voc), _run_voc07, (("mAP", "VOC07 mAP"),),
                               lambda ctx: dataclasses.asdict(_voc07_settings(ctx))))
    s, r = _classification("in1k_linear")
    register_task(TransferTask("in1k_linear", "ImageNet-1k linear", _paths("imagenet/train", "imagenet/val"), r,
                               (("top1", "IN-1k top-1"),), lambda ctx, s=s: dataclasses.asdict(s(ctx))))
    box = (("bbox/AP", "APbb"), ("bbox/AP50", "APbb50"), ("bbox/AP75", "APbb75"))
    mask = (("segm/AP", "APmk"), ("segm/AP50", "APmk50"), ("segm/AP75", "APmk75"))

    def d2(name: str, title: str, config: str, columns, label: str, percent: Optional[float] = None):
        req, run, settings = _detectron2(config, percent)
        cols = tuple((k, f"{label} {c}") for k, c in columns)
        register_task(TransferTask(name, title, req, run, cols, lambda ctx, n=name, st=settings: st(TASKS[n], ctx)))

    d2("coco_instance", "COCO Mask R-CNN R50-FPN 2x", "coco_mask_rcnn_R_50_FPN_2x.yaml", box + mask, "COCO")
    d2("lvis_instance", "LVIS v1 Mask R-CNN R50-FPN 2x", "lvis_v1_mask_rcnn_R_50_FPN_2x.yaml", mask, "LVIS")
    d2("lvis_instance_frozenbn", "LVIS v1 Mask R-CNN R50-FPN 2x, frozen BN (IN-sup protocol)",
       "lvis_v1_mask_rcnn_R_50_FPN_2x_frozenbn.yaml", mask, "LVIS-FrozenBN")
    d2("voc_detection", "VOC07+12 Faster R-CNN R50-C4 24K", "voc0712_faster_rcnn_R_50_C4_24k.yaml", box, "VOC")
    s, r = _classification("inat18")
    register_task(TransferTask("inat18", "iNat 2018 fine-tuning", _paths("inat2018/train2018.json",
                               "inat2018/val2018.json"), r, (("top1", "iNat18 top-1"),),
                               lambda ctx, s=s: dataclasses.asdict(s(ctx))))
    for p in (10, 20, 50, 100):
        d2(f"coco_limited_{p}", f"LocTex limited-data COCO {p}% (Mask R-CNN R50-C4)",
           "coco_limited_mask_rcnn_R_50_C4_2x.yaml", (box[0], mask[0]), f"COCO-{p}%", percent=float(p))


_register_all()

#: What ``--tasks`` defaults to: every protocol once (the frozen-BN LVIS variant is for IN-sup).
DEFAULT_TASKS: Tuple[str, ...] = tuple(t for t in TASKS if t != "lvis_instance_frozenbn")


# ------------------------------------------------------------------------------------------------
# running


def _write_json(path: str, obj: Any) -> None:
    atomic_write_json(path, _finite(obj), indent=1)


def _finite(obj: Any) -> Any:
    """NaN / inf (e.g. AP of a class without ground truth) -> null, so the JSON is standard."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _finished(path: str, fingerprint: str, settings: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        done = json.load(f)
    if done.get("fingerprint") != fingerprint or done.get("settings") != _finite(settings):
        logger.info("%s was made with another backbone or other settings: running the task again", path)
        return None
    return done


def run_suite(
    backbone: str,
    tasks: Sequence[str] = DEFAULT_TASKS,
    output_dir: str = "output/transfer",
    datasets_root: Optional[str] = None,
    num_gpus: int = 1,
    resume: bool = False,
    arch: str = "resnet50",
    prefix: Optional[str] = None,
    trust_pickle: bool = False,
    d2_opts: Sequence[str] = (),
    overrides: Optional[Dict[str, Dict[str, Any]]] = None,
) -> Dict[str, Any]:
    """Run ``tasks`` on ``backbone``; returns the summary also written to ``results.json``."""
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise KeyError(f"unknown transfer tasks {unknown}; known: {', '.join(TASKS)}")
    datasets_root = datasets_root or os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))
    weights, report = convert_checkpoint(backbone, arch=arch, prefix=prefix, trust_pickle=trust_pickle)
    logger.info("%s", report.summary())
    pkl = os.path.join(output_dir, "backbone", "backbone.pkl")
    save_detectron2_pkl(weights, pkl)
    _write_json(os.path.join(output_dir, "backbone", "conversion_report.json"), report.to_dict())
    ctx = SuiteContext(backbone=backbone, weights=weights, backbone_pkl=pkl, fingerprint=weights_fingerprint(weights),
                       output_dir=output_dir, datasets_root=datasets_root, num_gpus=num_gpus, resume=resume,
                       arch=arch, d2_opts=tuple(d2_opts), overrides=dict(overrides or {}))
    status: "OrderedDict[str, Dict[str, Any]]" = OrderedDict()
    for name in tasks:
        task = TASKS[name]
        task_dir = os.path.join(output_dir, name)
        result_path = os.path.join(task_dir, RESULT_FILE)
        settings = task.settings(ctx)
        done = _finished(result_path, ctx.fingerprint, settings) if resume else None
        if done is not None:
            logger.info("[%s] finished earlier (%s): skipped", name, result_path)
            status[name] = {"status": "done", "resumed": True, "metrics": done["metrics"], "result_file": result_path}
            continue
        missing = [p for p in task.required(datasets_root) if not os.path.exists(p)]
        if missing:
            logger.warning("[%s] skipped: dataset missing, expected %s", name, ", ".join(missing))
            status[name] = {"status": "missing_dataset", "missing": missing}
            continue
        logger.info("[%s] running %s", name, task.title)
        try:
            result = task.run(task, ctx, task_dir)
        except Exception as e:  # one failing task must not lose the others' results
            logger.error("[%s] failed: %s", name, e)
            status[name] = {"status": "failed", "error": f"{type(e).__name__}: {e}",
                            "traceback": traceback.format_exc()}
            continue
        _write_json(result_path, {"task": name, "backbone": backbone, "fingerprint": ctx.fingerprint,
                                  "settings": settings, **result})
        status[name] = {"status": "done", "resumed": False, "metrics": _finite(result["metrics"]),
                        "result_file": result_path}
    summary = {"backbone": backbone, "fingerprint": ctx.fingerprint, "datasets_root": datasets_root,
               "conversion": {"layout": report.to_dict()["layout"], "converted": len(report.converted)},
               "tasks": status}
    columns, rows = results_table(status, tasks, os.path.basename(backbone))
    summary["table"] = {"columns": columns, "rows": rows}
    _write_json(os.path.join(output_dir, "results.json"), summary)
    markdown = table_markdown(columns, rows)
    atomic_write(os.path.join(output_dir, "results.md"), markdown)
    summary["markdown"] = markdown
    return summary


# ------------------------------------------------------------------------------------------------
# the table


def load_references(path: str = REFERENCES) -> List[Dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)["rows"]


def results_table(status: Mapping[str, Dict[str, Any]], tasks: Sequence[str], label: str
                  ) -> Tuple[List[Dict[str, str]], List[Dict[str, Any]]]:
    """Columns of the tasks run, the reference rows with at least one value there, and the new row."""
    columns = [{"key": f"{t}/{k}", "label": c} for t in tasks for k, c in TASKS[t].columns]
    keys = [c["key"] for c in columns]
    rows = []
    for ref in load_references():
        values = {k: ref["values"][k] for k in keys if k in ref["values"]}
        if values:
            rows.append({"method": ref["method"], "source": ref["source"], "pretrain_images": ref["pretrain_images"],
                         "values": values})
    new: Dict[str, Any] = {}
    for t in tasks:
        st = status.get(t, {"status": "not run"})
        for k, _ in TASKS[t].columns:
            if st["status"] == "done":
                new[f"{t}/{k}"] = st["metrics"].get(k)
            else:
                new[f"{t}/{k}"] = st["status"].replace("_", " ")
    rows.append({"method": f"**{label}**", "source": "this run", "pretrain_images": "", "values": new})
    return columns, rows


def table_markdown(columns: Sequence[Dict[str, str]], rows: Sequence[Dict[str, Any]]) -> str:
    def cell(v: Any) -> str:
        if v is None:
            return "–"
        return f"{v:.1f}" if isinstance(v, (int, float)) else str(v)

    head = ["Method", "Pretrain images", "Source"] + [c["label"] for c in columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * len(columns)) + "|"]
    for r in rows:
        vals = [cell(r["values"].get(c["key"])) for c in columns]
        lines.append("| " + " | ".join([r["method"], r["pretrain_images"] or "–", r["source"]] + vals) + " |")
    return "\n".join(lines) + "\n"
