"""Reuse a finished run only when it was made from the same inputs.

The demo (:mod:`alpseg.demo.table3`) and the ablation runner (:mod:`alpseg.demo.ablation`) skip a
model whose ``results.json`` exists, so that a killed run continues where it stopped. Keyed by the
folder alone, that reuse is silently wrong after anything that changes the result: another
``--iterations``, a recipe changed by ``git pull``, another phrase bank. Each run folder therefore
keeps a ``fingerprint.json`` of its inputs (the resolved config, digests of the files it reads);
a folder made from other inputs is moved aside, never deleted, and the run starts fresh.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from typing import Any, Dict

from .io import atomic_write_json, json_safe

__all__ = ["FINGERPRINT_FILE", "file_digest", "move_aside", "prepare_run_folder", "prune_periodic_checkpoints"]

logger = logging.getLogger(__name__)

FINGERPRINT_FILE = "fingerprint.json"
_PERIODIC_CHECKPOINT = re.compile(r"model_\d{7}\.pth")


def file_digest(path: str) -> str:
    """SHA-1 of a file's bytes (the inputs of a run: phrase bank, ALPs, ...)."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_fingerprint(folder: str) -> Any:
    try:
        with open(os.path.join(folder, FINGERPRINT_FILE), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def move_aside(folder: str) -> str:
    """Rename ``folder`` to the first free ``<folder>.stale-<n>`` (nothing is deleted); returns that path."""
    for n in range(1, 10000):
        target = f"{folder}.stale-{n}"
        if not os.path.exists(target):
            os.replace(folder, target)
            return target
    raise RuntimeError(f"{folder}: too many .stale-N copies beside it; delete the old ones")


def prepare_run_folder(folder: str, fingerprint: Dict[str, Any], done_file: str = "results.json") -> bool:
    """Make ``folder`` ready for a run of ``fingerprint``; True when its finished result can be reused.

    * same fingerprint and ``done_file`` present: True (nothing to do);
    * same fingerprint, not finished: False, the folder is kept (a ``--resume`` continues it);
    * another fingerprint, or a non-empty folder without one: the folder is renamed to
      ``<folder>.stale-<n>`` (a warning names both) and a fresh one is made; False.
    The fingerprint is written before the run starts, so an interrupted run is recognised later.
    """
    wanted = json_safe(fingerprint)
    if os.path.isdir(folder) and os.listdir(folder):
        found = _read_fingerprint(folder)
        if found == wanted:
            return os.path.isfile(os.path.join(folder, done_file))
        moved = move_aside(folder)
        logger.warning("%s was made from other inputs (%s); moved it to %s and starting this run afresh",
                       folder, "no fingerprint" if found is None else "another config, bank or data", moved)
    os.makedirs(folder, exist_ok=True)
    atomic_write_json(os.path.join(folder, FINGERPRINT_FILE), wanted, indent=1)
    return False


def prune_periodic_checkpoints(folder: str) -> int:
    """Delete a *finished* run's periodic checkpoints (``model_NNNNNNN.pth``); returns the bytes freed.

    They exist so that a killed run resumes; once ``model_final.pth`` is written and ``last_checkpoint``
    names it they are dead weight (the last one is a copy of the final weights): a demo model's three
    checkpoints were 300 MB, the nine of ``make demo`` 2.7 GB. An unfinished run is left as it is.
    """
    try:
        with open(os.path.join(folder, "last_checkpoint"), encoding="utf-8") as f:
            finished = f.read().strip() == "model_final.pth"
    except OSError:
        return 0
    if not finished or not os.path.isfile(os.path.join(folder, "model_final.pth")):
        return 0
    freed = 0
    for name in os.listdir(folder):
        if _PERIODIC_CHECKPOINT.fullmatch(name):
            path = os.path.join(folder, name)
            freed += os.path.getsize(path)
            os.remove(path)
    return freed
