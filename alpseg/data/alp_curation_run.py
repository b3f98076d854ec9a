"""Deprecated import path: the curation run now lives in :mod:`alpseg.data.curation.job`.

Kept for one release so existing imports keep working; import from ``alpseg.data.curation`` instead.
"""
from .curation.job import CurationJob, merge_shards, parse_shard, write_alps_json  # noqa: F401

__all__ = ["CurationJob", "parse_shard", "merge_shards", "write_alps_json"]
