"""Read results files of every kind alpseg writes into one shape the Results tab can compare.

Three layouts are recognised (AP values in percent in the output, whatever the input used):

* ``tools/run_demo.py``'s ``results.json``: ``{"models": {name: {"AP50_base", "AP50_novel", "AP50",
  optional "per_seed"}}, ...}``; ``per_seed`` (the demo's columns ``{"AP50_base": [...], "AP50_novel":
  [...]}`` in seed order, a dict seed -> metrics, or a list of metrics) gives the
  spread over seeds. Unknown extra keys are ignored, so newer demo files still load.
* ``tools/train_net.py``'s ``OUTPUT_DIR/results.json``: detectron2's ``{task: {metric: value}}`` (e.g.
  ``oid_challenge`` or ``segm`` / ``bbox``), or ``{dataset: {task: {...}}}`` with several test sets;
  ``AP50-base`` / ``AP50-novel`` are the split means and ``AP50-<class>`` the per-category values.
* The evaluator's own output (``tools/eval_oid_challenge.py --output``): ``{"mAP", "AP50_base",
  "AP50_novel", "per_class": {id: AP}, "class_names"}`` with APs as fractions.

A file that matches none of them is a ``ValueError`` naming the file.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

__all__ = ["RunResult", "load_results", "summary_rows", "per_category_rows", "SUMMARY_HEADERS"]

SUMMARY_HEADERS = ["run", "task", "AP50", "AP50 base", "AP50 novel", "seeds", "AP50 novel over seeds", "file"]
_SPLIT_KEYS = {"AP50-base": "AP50_base", "AP50_base": "AP50_base", "AP50-novel": "AP50_novel",
               "AP50_novel": "AP50_novel", "AP50": "AP50", "mAP": "AP50"}


@dataclasses.dataclass
class RunResult:
    """One model evaluated on one task: split means, per-category AP50 and per-seed values (percent)."""

    name: str
    task: str
    path: str
    metrics: Dict[str, float]  # keys among "AP50", "AP50_base", "AP50_novel"
    per_class: Dict[str, float] = dataclasses.field(default_factory=dict)
    per_seed: List[Dict[str, float]] = dataclasses.field(default_factory=list)


def _number(value: Any) -> Optional[float]:
    """A finite float, or None for null / NaN / non-numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _split_metrics(d: Mapping[str, Any], scale: float = 1.0) -> Dict[str, float]:
    out = {}
    for key, name in _SPLIT_KEYS.items():
        v = _number(d.get(key))
        if v is not None and name not in out:
            out[name] = v * scale
    return out


def _per_seed(value: Any) -> List[Dict[str, float]]:
    if isinstance(value, Mapping) and value and all(isinstance(v, list) for v in value.values()):
        # the demo's columns, {"AP50_base": [seed 0, seed 1, ...], "AP50_novel": [...]} -> one dict a seed
        columns = {k: v for k, v in value.items() if k in _SPLIT_KEYS}
        value = [{k: v[i] for k, v in columns.items() if i < len(v)}
                 for i in range(max((len(v) for v in columns.values()), default=0))]
    items = value.values() if isinstance(value, Mapping) else value if isinstance(value, list) else []
    return [m for m in (_split_metrics(v) for v in items if isinstance(v, Mapping)) if m]


def _is_metric_dict(d: Any) -> bool:
    return isinstance(d, Mapping) and any(isinstance(k, str) and k.startswith("AP") for k in d)


def _from_detectron2(name: str, task: str, path: str, d: Mapping[str, Any]) -> RunResult:
    metrics = _split_metrics(d)
    per_class = {}
    for key, value in d.items():
        if key.startswith("AP50-") and key not in _SPLIT_KEYS:
            v = _number(value)
            if v is not None:
                per_class[key[len("AP50-"):]] = v
    return RunResult(name, task, path, metrics, per_class)


def _read_one(path: str, name: str) -> List[RunResult]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read results ({e}); give a results.json of tools/run_demo.py or "
                         f"tools/train_net.py, or an evaluator output") from None
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a JSON object of results, got {type(data).__name__}")
    runs: List[RunResult] = []
    if isinstance(data.get("models"), Mapping):  # tools/run_demo.py
        for model, m in data["models"].items():
            if isinstance(m, Mapping):
                runs.append(RunResult(model, "oid_challenge", path, _split_metrics(m),
                                      per_seed=_per_seed(m.get("per_seed"))))
    elif isinstance(data.get("per_class"), Mapping) and "mAP" in data:  # evaluator output, fractions
        names = data.get("class_names") or {}
        values = {names.get(k, k): _number(v) for k, v in data["per_class"].items()}
        per_class = {k: v * 100.0 for k, v in values.items() if v is not None}
        runs.append(RunResult(name, "oid_challenge", path, _split_metrics(data, 100.0), per_class))
    else:  # detectron2: {task: metrics} or {dataset: {task: metrics}}
        for key, value in data.items():
            if _is_metric_dict(value):
                runs.append(_from_detectron2(name, key, path, value))
            elif isinstance(value, Mapping):
                runs += [_from_detectron2(name, f"{key}/{task}", path, v) for task, v in value.items()
                         if _is_metric_dict(v)]
    runs = [r for r in runs if r.metrics or r.per_class]
    if not runs:
        raise ValueError(f"{path}: no AP values found (not a results.json of tools/run_demo.py or "
                         f"tools/train_net.py, nor an evaluator output)")
    return runs


def _run_name(path: str) -> str:
    """The folder a results.json is in (``output/demo/fcos_mo_alp/results.json`` -> ``fcos_mo_alp``)."""
    folder = os.path.basename(os.path.dirname(os.path.abspath(path)))
    base = os.path.splitext(os.path.basename(path))[0]
    return folder if base == "results" else f"{folder}/{base}"


def load_results(paths: Iterable[str]) -> List[RunResult]:
    """All runs of all files, in file order; runs of the demo file are named by model."""
    runs: List[RunResult] = []
    for path in paths:
        runs += _read_one(path, _run_name(path))
    return runs


def _fmt(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.1f}"


def summary_rows(runs: Sequence[RunResult]) -> List[List[Any]]:
    """Rows of :data:`SUMMARY_HEADERS`, one per run; numbers rounded to 0.1 (``-`` where absent)."""
    rows = []
    for r in runs:
        novel = [s["AP50_novel"] for s in r.per_seed if "AP50_novel" in s]
        spread = "-"
        if len(novel) > 1:
            spread = f"{statistics.mean(novel):.1f} ± {statistics.stdev(novel):.1f}"
        rows.append([r.name, r.task, _fmt(r.metrics.get("AP50")), _fmt(r.metrics.get("AP50_base")),
                     _fmt(r.metrics.get("AP50_novel")), len(r.per_seed) or "-", spread, r.path])
    return rows


def per_category_rows(runs: Sequence[RunResult], sort: str = "AP") -> List[Dict[str, Any]]:
    """Long-format per-category AP50 of every run that has them: ``{"category", "run", "AP50"}``.

    ``sort`` is ``"AP"`` (categories by their best AP over runs, high to low, ties by name) or
    ``"name"`` (alphabetical); within a category, runs stay in the order given.
    """
    if sort not in ("AP", "name"):
        raise ValueError(f"sort must be 'AP' or 'name', not {sort!r}")
    rows = [{"category": c, "run": f"{r.name} ({r.task})", "AP50": round(v, 2)}
            for r in runs for c, v in r.per_class.items()]
    best: Dict[str, float] = {}
    for row in rows:
        best[row["category"]] = max(best.get(row["category"], -1.0), row["AP50"])
    if sort == "AP":
        order = sorted(best, key=lambda c: (-best[c], c))
    else:
        order = sorted(best)
    rank = {c: i for i, c in enumerate(order)}
    return sorted(rows, key=lambda row: rank[row["category"]])  # stable: runs keep their order
