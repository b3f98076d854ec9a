"""Old name of :mod:`alpseg.transfer.builtin_datasets` (it looked like ``alpseg.data.datasets``);
re-exported for one release, to be removed after it."""
import warnings

from .builtin_datasets import (  # noqa: F401
    register_subset,
    register_under_root,
    required_paths,
    subset_image_ids,
    subset_name,
)

warnings.warn("alpseg.transfer.datasets is renamed alpseg.transfer.builtin_datasets", DeprecationWarning,
              stacklevel=2)
