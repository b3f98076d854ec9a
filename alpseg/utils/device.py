"""The one device picker of the package: ``"auto"`` means the first CUDA GPU when there is one."""
from __future__ import annotations

from typing import Optional, Union

import torch

__all__ = ["pick_device"]


def pick_device(device: Optional[Union[str, torch.device]] = "auto") -> torch.device:
    """``None`` / ``"auto"`` -> ``cuda`` if available, else ``cpu``; anything else as torch parses it.

    An explicit CUDA device on a machine without one is an error here (naming the fix) rather than
    deep inside the first ``.to()``.
    """
    if device is None or str(device).lower() == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {str(device)!r} requested but CUDA is not available; use 'cpu' or 'auto'")
    return dev
