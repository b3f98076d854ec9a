"""Progress bars that a tool's ``--no-progress`` switches off everywhere, spawned processes included."""
from __future__ import annotations

import os
from typing import Any, Iterable

from tqdm import tqdm

__all__ = ["NO_PROGRESS_ENV", "disable_progress", "progress_bar"]

#: Set to "1" (by :func:`disable_progress`) to silence every :func:`progress_bar`; an environment
#: variable so that processes started by detectron2's ``launch`` inherit it.
NO_PROGRESS_ENV = "ALPSEG_NO_PROGRESS"


def disable_progress() -> None:
    os.environ[NO_PROGRESS_ENV] = "1"


def progress_bar(iterable: Iterable, disable: bool = False, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, **kwargs)``, off when ``disable`` or when progress is disabled process-wide."""
    return tqdm(iterable, disable=disable or os.environ.get(NO_PROGRESS_ENV) == "1", **kwargs)
