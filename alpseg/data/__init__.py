"""Data: readers, mappers, samplers and dataset registrations (registered lazily on import)."""
from . import datasets  # noqa: F401  (registers every alpseg dataset name)
