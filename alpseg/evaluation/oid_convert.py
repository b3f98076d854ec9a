"""Deprecated path, kept for one release: this module moved to :mod:`alpseg.evaluation.oid.convert`."""
from .oid import convert as _moved

__all__ = list(_moved.__all__)


def __getattr__(name: str):
    return getattr(_moved, name)  # every name of the moved module, public or not, as before the move
