"""Running a classification protocol in this process or in one process per GPU, and collecting its result."""
from __future__ import annotations

import json
from typing import Any, Callable, Dict

import torch

from alpseg.utils.io import write_json

__all__ = ["launch_and_collect"]


def _entry(fn: Callable, kwargs: Dict[str, Any], path: str) -> None:
    from detectron2.utils import comm

    result = fn(**kwargs)
    if comm.is_main_process():
        write_json(path, result, indent=1)


def launch_and_collect(fn: Callable, kwargs: Dict[str, Any], num_gpus: int, path: str) -> Dict[str, Any]:
    """``fn(**kwargs)`` here, or in ``num_gpus`` processes under detectron2's ``launch`` (the main
    process's return value travels back through the JSON file ``path``)."""
    gpus = min(num_gpus, torch.cuda.device_count())
    if gpus <= 1:
        return fn(**kwargs)
    from detectron2.engine import launch

    launch(_entry, gpus, dist_url="auto", args=(fn, kwargs, path))
    with open(path, encoding="utf-8") as f:
        return json.load(f)
