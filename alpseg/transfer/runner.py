"""Running a list of transfer tasks on one backbone: conversion once, per-task state, the results files.

:func:`run_suite` converts the backbone once (failing, with the full key report, if it is
incomplete), then runs each chosen task in ``<output>/<task>/`` with its own ``log.txt``. A task
whose dataset is absent is recorded as ``missing_dataset`` with every expected path; a task that
raises is recorded as ``failed`` and the others still run.

Each task folder records what it was started with in ``task.json`` (backbone fingerprint, arch,
settings) and, when finished, its result in ``result.json``. A folder made with another backbone or
other settings is never continued: it is moved aside to ``<task>.stale-N`` (nothing is deleted) and
the task starts fresh. With ``resume`` a task whose ``result.json`` matches is skipped, and one whose
``task.json`` matches continues from its own checkpoints; without ``resume`` a matching task starts
over in place (its keyed caches, e.g. VOC07 features, are still reused).
"""
from __future__ import annotations

import json
import logging
import os
import traceback
from collections import OrderedDict
from typing import Any, Dict, Optional, Sequence

from alpseg.utils.io import atomic_write, json_safe, write_json
from alpseg.utils.run_cache import move_aside

from .checkpoints import convert_checkpoint, save_detectron2_pkl
from .images import weights_fingerprint
from .logs import task_log
from .table import LEGEND, results_table, table_markdown
from .tasks import DEFAULT_TASKS, TASKS, SuiteContext, check_arch

__all__ = ["run_suite", "RESULT_FILE", "STATE_FILE", "task_state"]

logger = logging.getLogger(__name__)

RESULT_FILE = "result.json"  # the task's done-marker and result
STATE_FILE = "task.json"  # what the task folder was started with


def _read_json(path: str) -> Optional[Dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        logger.warning("%s is unreadable (%s): treated as absent", path, e)
        return None


def task_state(ctx: SuiteContext, settings: Dict[str, Any]) -> Dict[str, Any]:
    """What decides a task's result besides its data: JSON-normalised so it compares with a stored copy."""
    return json_safe({"fingerprint": ctx.fingerprint, "arch": ctx.arch, "settings": settings})


def _same(stored: Optional[Dict[str, Any]], state: Dict[str, Any]) -> bool:
    return stored is not None and all(stored.get(k) == v for k, v in state.items())


def _finished(task_dir: str, state: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The task's stored result when its folder and its result were both made with ``state``."""
    if not _same(_read_json(os.path.join(task_dir, STATE_FILE)), state):
        return None
    done = _read_json(os.path.join(task_dir, RESULT_FILE))
    return done if _same(done, state) and "metrics" in done else None


def _prepare(task_dir: str, state: Dict[str, Any], name: str) -> None:
    """Make ``task_dir`` hold only outputs made with ``state`` (others moved aside), without a result."""
    if os.path.isdir(task_dir) and os.listdir(task_dir):
        if not _same(_read_json(os.path.join(task_dir, STATE_FILE)), state):
            moved = move_aside(task_dir)
            logger.info("[%s] %s was made with another backbone, arch or settings: moved to %s, starting fresh",
                        name, task_dir, moved)
        elif os.path.exists(os.path.join(task_dir, RESULT_FILE)):
            os.remove(os.path.join(task_dir, RESULT_FILE))  # written again when the task finishes
    write_json(os.path.join(task_dir, STATE_FILE), state, indent=1)


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
    check_arch(arch)
    datasets_root = datasets_root or os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))
    weights, report = convert_checkpoint(backbone, arch=arch, prefix=prefix, trust_pickle=trust_pickle)
    logger.info("%s", report.summary())
    pkl = os.path.join(output_dir, "backbone", "backbone.pkl")
    save_detectron2_pkl(weights, pkl)
    write_json(os.path.join(output_dir, "backbone", "conversion_report.json"), report.to_dict(), indent=1)
    ctx = SuiteContext(backbone=backbone, weights=weights, backbone_pkl=pkl, fingerprint=weights_fingerprint(weights),
                       output_dir=output_dir, datasets_root=datasets_root, num_gpus=num_gpus, resume=resume,
                       arch=arch, d2_opts=tuple(d2_opts), overrides=dict(overrides or {}))
    settings = {name: TASKS[name].settings(ctx) for name in tasks}  # every override checked before any task runs
    status: "OrderedDict[str, Dict[str, Any]]" = OrderedDict()
    for name in tasks:
        status[name] = _run_task(name, ctx, settings[name])
    summary = {"backbone": backbone, "fingerprint": ctx.fingerprint, "arch": arch, "datasets_root": datasets_root,
               "conversion": {"layout": report.to_dict()["layout"], "converted": len(report.converted)},
               "tasks": status}
    columns, rows = results_table(status, tasks, os.path.basename(backbone))
    summary["table"] = {"columns": columns, "rows": rows}
    write_json(os.path.join(output_dir, "results.json"), summary, indent=1)
    markdown = table_markdown(columns, rows) + "\n" + LEGEND + "\n"
    atomic_write(os.path.join(output_dir, "results.md"), markdown)
    summary["markdown"] = markdown
    return summary


def _run_task(name: str, ctx: SuiteContext, settings: Dict[str, Any]) -> Dict[str, Any]:
    task = TASKS[name]
    task_dir = os.path.join(ctx.output_dir, name)
    result_path = os.path.join(task_dir, RESULT_FILE)
    state = task_state(ctx, settings)
    done = _finished(task_dir, state) if ctx.resume else None
    if done is not None:
        logger.info("[%s] finished earlier (%s): skipped", name, result_path)
        return {"status": "done", "resumed": True, "metrics": done["metrics"], "result_file": result_path}
    missing = [p for p in task.required(ctx.datasets_root) if not os.path.exists(p)]
    if missing:
        logger.warning("[%s] skipped: dataset missing, expected %s", name, ", ".join(missing))
        return {"status": "missing_dataset", "missing": missing}
    _prepare(task_dir, state, name)
    logger.info("[%s] running %s (log: %s)", name, task.title, os.path.join(task_dir, "log.txt"))
    with task_log(os.path.join(task_dir, "log.txt")):
        try:
            result = task.run(ctx, task_dir, ctx.resume)
        except Exception as e:  # one failing task must not lose the others' results
            logger.error("[%s] failed: %s", name, e)
            return {"status": "failed", "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    write_json(result_path, {"task": name, "backbone": ctx.backbone, **state, **result}, indent=1)
    return {"status": "done", "resumed": False, "metrics": json_safe(result["metrics"]), "result_file": result_path}
