"""Per-task log files for the transfer suite, without adding console handlers.

detectron2's ``setup_logger`` adds a console handler on every call with new arguments, so calling
it once per task in one process repeats every console line once per task run so far. Tools set up
logging once per process; a task then gets its own ``log.txt`` through :func:`task_log`, which
attaches a file handler to the ``alpseg`` and ``detectron2`` loggers for the task's duration.
"""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator, List, Tuple

__all__ = ["task_log", "TASK_LOGGERS"]

#: Loggers whose records go to a task's log file (detectron2's trainer, hooks and evaluators log
#: under ``detectron2.*``, fvcore's checkpointer under ``fvcore.*``).
TASK_LOGGERS: Tuple[str, ...] = ("alpseg", "detectron2", "fvcore")


@contextlib.contextmanager
def task_log(path: str, level: int = logging.INFO) -> Iterator[str]:
    """Append every record of :data:`TASK_LOGGERS` at ``level`` or above to ``path`` while the block runs."""
    path = os.path.abspath(path)
    if any(isinstance(h, logging.FileHandler) and h.baseFilename == path for h in logging.getLogger("alpseg").handlers):
        yield path  # an enclosing block already writes there (the suite around a detectron2 task)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(name)s %(levelname)s: %(message)s", "%m/%d %H:%M:%S"))
    restore: List[Tuple[logging.Logger, int]] = []
    for name in TASK_LOGGERS:
        lg = logging.getLogger(name)
        if lg.getEffectiveLevel() > level:  # e.g. no setup at all: root's WARNING would drop INFO
            restore.append((lg, lg.level))
            lg.setLevel(level)
        lg.addHandler(handler)
    try:
        yield path
    finally:
        for name in TASK_LOGGERS:
            logging.getLogger(name).removeHandler(handler)
        for lg, old in restore:
            lg.setLevel(old)
        handler.close()
