"""Checkpoints that are written atomically and loads that cannot half-succeed.

:class:`AlpsegCheckpointer` is detectron2's ``DetectionCheckpointer`` (``.pkl`` / ``.pth`` / model-zoo
URLs, Caffe2 name matching) with:

* **atomic saves**: a killed save leaves the previous checkpoint and ``last_checkpoint`` intact;
* **readable-file errors**: a missing, empty, truncated or non-checkpoint ``MODEL.WEIGHTS`` is one
  :class:`CheckpointError` line naming the file and what to do, not a deep unpickling traceback;
* **a loading policy** (``ALPSEG.LOAD_MIN_BACKBONE_FRACTION``, ``ALPSEG.LOAD_ALLOW_PARTIAL``): every load
  logs how many of the model's tensors matched, were missing or unexpected, and fails when nothing
  matched, when less than the stated fraction of the backbone matched, or when any tensor's shape
  differs. ``ALPSEG.LOAD_ALLOW_PARTIAL True`` accepts partial loads on purpose (still not an empty
  one). BatchNorm's ``num_batches_tracked`` counters are not counted (no pretrained file has them).
"""
from __future__ import annotations

import logging
import os
from typing import List, Optional

import torch
from detectron2.checkpoint import DetectionCheckpointer

from alpseg.utils.io import atomic_open

__all__ = ["AlpsegCheckpointer", "CheckpointError", "LoadReport"]

logger = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the model (one line: file and fix)."""


def _counted(keys) -> List[str]:
    return [k for k in keys if not k.endswith("num_batches_tracked")]


class LoadReport:
    """What a load matched: counts over the model's tensors and over its backbone's."""

    def __init__(self, model_keys: List[str], missing: List[str], unexpected: List[str], mismatched: List[str]):
        model_keys, missing = _counted(model_keys), set(_counted(missing))
        mismatched = set(mismatched)
        self.total = len(model_keys)
        self.matched = sum(1 for k in model_keys if k not in missing and k not in mismatched)
        self.missing = len(missing)
        self.unexpected = len(unexpected)
        self.mismatched = sorted(mismatched)
        prefix = "backbone.bottom_up." if any(k.startswith("backbone.bottom_up.") for k in model_keys) else "backbone."
        backbone = [k for k in model_keys if k.startswith(prefix)]
        self.backbone_prefix = prefix
        self.backbone_total = len(backbone)
        self.backbone_matched = sum(1 for k in backbone if k not in missing and k not in mismatched)

    @property
    def backbone_fraction(self) -> float:
        return self.backbone_matched / self.backbone_total if self.backbone_total else 1.0

    def summary(self) -> str:
        return (f"{self.matched} of {self.total} model tensors matched ({self.backbone_prefix}*: "
                f"{self.backbone_matched} of {self.backbone_total}), {self.missing} missing, {self.unexpected} "
                f"unexpected, {len(self.mismatched)} with another shape")


class AlpsegCheckpointer(DetectionCheckpointer):
    """See the module docstring."""

    def __init__(self, model, save_dir: str = "", *, min_backbone_fraction: float = 0.9,
                 allow_partial: bool = False, **checkpointables):
        super().__init__(model, save_dir, **checkpointables)
        if not 0.0 <= min_backbone_fraction <= 1.0:
            raise ValueError(f"ALPSEG.LOAD_MIN_BACKBONE_FRACTION must be in [0, 1], got {min_backbone_fraction}")
        self.min_backbone_fraction = float(min_backbone_fraction)
        self.allow_partial = bool(allow_partial)
        self.last_report: Optional[LoadReport] = None
        self._loading: str = ""

    @classmethod
    def from_config(cls, cfg, model, save_dir: Optional[str] = None, **checkpointables) -> "AlpsegCheckpointer":
        return cls(model, cfg.OUTPUT_DIR if save_dir is None else save_dir,
                   min_backbone_fraction=cfg.ALPSEG.LOAD_MIN_BACKBONE_FRACTION,
                   allow_partial=cfg.ALPSEG.LOAD_ALLOW_PARTIAL, **checkpointables)

    # ------------------------------------------------------------------ saving
    def save(self, name: str, **kwargs) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        path = os.path.join(self.save_dir, f"{name}.pth")
        self.logger.info("Saving checkpoint to %s", path)
        with atomic_open(path, "wb") as f:
            torch.save(data, f)
        self.tag_last_checkpoint(os.path.basename(path))

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        with atomic_open(os.path.join(self.save_dir, "last_checkpoint")) as f:
            f.write(last_filename_basename)

    # ------------------------------------------------------------------ loading
    def load(self, path: str, checkpointables=None):
        if path and "://" not in path and not os.path.isfile(path):
            raise CheckpointError(f"checkpoint {path!r} does not exist; check MODEL.WEIGHTS (or --resume's "
                                  "OUTPUT_DIR/last_checkpoint)")
        self._loading = path
        try:
            return super().load(path, checkpointables)
        finally:
            self._loading = ""

    def _load_file(self, filename: str):
        if os.path.isfile(filename) and os.path.getsize(filename) == 0:
            raise CheckpointError(f"checkpoint {filename!r} is empty (0 bytes); a save or download was interrupted: "
                                  "use another checkpoint or download it again")
        try:
            data = super()._load_file(filename)
        except CheckpointError:
            raise
        except Exception as e:  # noqa: BLE001  (any unpickling failure means an unreadable file)
            raise CheckpointError(
                f"checkpoint {filename!r} cannot be read ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}); "
                "it is truncated or not a .pth/.pkl checkpoint: use another file or download it again"
            ) from None
        model = data.get("model") if isinstance(data, dict) else None
        if not isinstance(model, dict) or not model:
            raise CheckpointError(f"checkpoint {filename!r} holds no model weights (no non-empty 'model' dict)")
        return data

    def _load_model(self, checkpoint):
        model_keys = list(self.model.state_dict().keys())
        try:
            incompatible = super()._load_model(checkpoint)
        except (TypeError, AttributeError, ValueError) as e:
            raise CheckpointError(f"checkpoint {self._loading!r} does not hold tensors keyed by name "
                                  f"({type(e).__name__}: {e})") from None
        report = LoadReport(model_keys, list(incompatible.missing_keys), list(incompatible.unexpected_keys),
                            [k for k, *_ in incompatible.incorrect_shapes])
        self.last_report = report
        self.logger.info("Loaded %s: %s", self._loading, report.summary())
        self._enforce(report)
        return incompatible

    def _enforce(self, report: LoadReport) -> None:
        name = self._loading
        if report.matched == 0:
            raise CheckpointError(f"checkpoint {name!r} matches none of the model's {report.total} tensors; it is "
                                  "for another model (convert a ResNet-50 with tools/convert_backbone.py)")
        if self.allow_partial:
            return
        if report.mismatched:
            shown = ", ".join(report.mismatched[:5]) + (" ..." if len(report.mismatched) > 5 else "")
            raise CheckpointError(f"checkpoint {name!r}: {len(report.mismatched)} tensors have another shape than "
                                  f"the model's ({shown}); fix the config, or set ALPSEG.LOAD_ALLOW_PARTIAL True to "
                                  "skip them on purpose")
        if report.backbone_fraction < self.min_backbone_fraction:
            raise CheckpointError(
                f"checkpoint {name!r}: only {report.backbone_matched} of {report.backbone_total} backbone tensors "
                f"matched ({report.backbone_fraction:.0%} < ALPSEG.LOAD_MIN_BACKBONE_FRACTION "
                f"{self.min_backbone_fraction:.0%}); convert it with tools/convert_backbone.py, or set "
                "ALPSEG.LOAD_ALLOW_PARTIAL True to load it partially on purpose")
