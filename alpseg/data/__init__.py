"""Data: readers, mappers, samplers and dataset registrations (registered lazily on import)."""
import importlib

for _name in ("datasets",):
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as _e:
        if _e.name != f"{__name__}.{_name}":
            raise
