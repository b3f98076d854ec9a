"""Loss normalisers kept as EMAs that live in the checkpoint and agree across processes.

detectron2's dense detectors normalise their losses by an exponential moving average of the number of
foreground anchors (``DenseDetector._ema_update(name, value, initial_value)``), kept in a plain Python
attribute: it is not in ``state_dict()``, so ``--resume`` restarts it at ``initial_value`` (FCOS-MO's
losses then shrink about 5x), and each process averages its own count, so the losses of ``P``
processes x ``B`` images are not those of one process x ``P * B`` images.

:class:`PersistentEMAMixin` replaces ``_ema_update`` for any normaliser name:

* **persistent**: the value of normaliser ``name`` is a float64 buffer ``ema_state_<name>`` registered
  on first use (names need not be known at construction: FCOS-MO may keep one per dataset). A
  checkpoint holds every buffer that existed when it was saved; loading registers the ones the model
  has not created yet (``_load_from_state_dict``), so a resumed model continues each EMA exactly.
  float64 holds the Python float bit for bit, so a resumed run computes the same values.
* **batch-wide**: ``value`` is summed over all processes and clamped at 1 before the update (callers
  pass their raw count: clamping per process first would count an empty process as 1), so the EMA
  tracks the whole batch's count (the same on every rank), and the returned normaliser is that EMA divided by
  the number of processes. A process's loss ``sum_r / (EMA / P)`` averaged by DDP over ``P``
  processes is ``sum_all / EMA``: the loss (and gradient) of one process holding the whole batch.
  With one process nothing changes.
"""
from __future__ import annotations

import torch
from detectron2.utils import comm

__all__ = ["PersistentEMAMixin", "EMA_PREFIX"]

EMA_PREFIX = "ema_state_"


def _global_sum(value: float) -> float:
    if comm.get_world_size() == 1:
        return float(value)
    return float(sum(comm.all_gather(float(value))))


class PersistentEMAMixin:
    """Mix into an ``nn.Module`` (before detectron2's ``DenseDetector``); see the module docstring."""

    def _ema_update(self, name: str, value: float, initial_value: float, momentum: float = 0.9) -> float:
        buffer = EMA_PREFIX + name
        total = max(_global_sum(value), 1.0)
        state = getattr(self, buffer, None)
        old = float(state.item()) if state is not None else float(initial_value)
        new = old * momentum + total * (1 - momentum)
        if state is None:
            self.register_buffer(buffer, torch.tensor(new, dtype=torch.float64), persistent=True)
        else:
            state.fill_(new)
        return new / comm.get_world_size()

    def ema_values(self) -> dict:
        """``{name: value}`` of every EMA kept so far (batch-wide values)."""
        return {k[len(EMA_PREFIX):]: float(v.item()) for k, v in self.named_buffers(recurse=False)
                if k.startswith(EMA_PREFIX)}

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # Create the EMA buffers this checkpoint holds and the model has not made yet, so that
        # load_state_dict fills them instead of reporting them as unexpected.
        for key, value in state_dict.items():
            if key.startswith(prefix + EMA_PREFIX) and "." not in key[len(prefix):]:
                name = key[len(prefix):]
                if getattr(self, name, None) is None and torch.is_tensor(value):
                    self.register_buffer(name, torch.zeros((), dtype=torch.float64, device=value.device),
                                         persistent=True)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
