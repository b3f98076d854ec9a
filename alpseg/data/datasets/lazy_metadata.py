"""Dataset metadata whose class lists are read from disk on first access.

Registration happens at ``import alpseg`` and must read nothing (the datasets may be absent, and
importing must stay fast). Yet evaluators and test vocabularies need ``thing_classes``,
``base_classes``... before or without loading the dataset dicts. :class:`LazyMetadata` is a detectron2
``Metadata`` whose listed keys are computed by a resolver the first time any of them is read; after
that it behaves exactly like ordinary metadata. A missing file then surfaces as a clear error at the
point of use, not as a silent default.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Dict, Iterable, Tuple

from detectron2.data import MetadataCatalog
from detectron2.data.catalog import Metadata

__all__ = ["LazyMetadata", "register_lazy_metadata"]

# dataset name -> (lazy keys, resolver); kept outside the instances so that as_dict() stays clean
_RESOLVERS: Dict[str, Tuple[frozenset, Callable[[], Dict[str, Any]]]] = {}
_LOCK = threading.Lock()


class LazyMetadata(Metadata):
    """``Metadata`` that fills some keys from a resolver on first access."""

    def __getattr__(self, key: str) -> Any:
        name = self.__dict__.get("name", "N/A")
        entry = _RESOLVERS.get(name)
        if entry is not None and key in entry[0]:
            with _LOCK:
                entry = _RESOLVERS.get(name)
                if entry is not None:  # (another thread may have resolved it meanwhile)
                    try:
                        values = entry[1]()
                    except OSError as e:
                        raise type(e)(f"metadata {key!r} of dataset {name!r} cannot be read: {e}") from e
                    missing = set(entry[0]) - set(values)
                    if missing:
                        raise RuntimeError(f"metadata resolver of {name!r} did not produce {sorted(missing)}")
                    for k, v in values.items():
                        self.__dict__.setdefault(k, v)
                    del _RESOLVERS[name]
            if key in self.__dict__:
                return self.__dict__[key]
        return super().__getattr__(key)


def register_lazy_metadata(name: str, keys: Iterable[str], resolver: Callable[[], Dict[str, Any]],
                           **eager: Any) -> LazyMetadata:
    """Create the metadata of ``name`` with ``eager`` values now and ``keys`` from ``resolver`` later.

    The dataset must not have metadata yet (a second registration under one name is a bug).
    """
    if name in MetadataCatalog:
        raise KeyError(f"metadata of dataset {name!r} already exists")
    meta = LazyMetadata(name=name)
    MetadataCatalog[name] = meta
    meta.set(**eager)
    _RESOLVERS[name] = (frozenset(keys), resolver)
    return meta
