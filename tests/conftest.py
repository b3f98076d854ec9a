"""Shared fixtures: the miniature dataset tree and a tiny-model config override.

``DETECTRON2_DATASETS`` must be set before detectron2 registers its builtin datasets, so it is set
here, at import time, to a per-user cache folder; the miniature world is written there once (it is
deterministic and reused while its seed and sizes are unchanged).
"""
import os
import tempfile

MINIATURE_ROOT = os.environ.setdefault(
    "ALPSEG_TEST_DATASETS", os.path.join(tempfile.gettempdir(), f"alpseg-test-datasets-{os.getuid()}")
)
os.environ["DETECTRON2_DATASETS"] = MINIATURE_ROOT
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

# Overrides that turn any shipped config into a model that steps in about a second on one CPU core.
TINY_MODEL_OPTS = [
    "MODEL.DEVICE", "cpu",
    "MODEL.WEIGHTS", "",
    "MODEL.RESNETS.DEPTH", "18",
    "MODEL.RESNETS.RES2_OUT_CHANNELS", "64",
    "MODEL.RESNETS.NORM", "BN",
    "MODEL.FPN.OUT_CHANNELS", "32",
    "INPUT.MIN_SIZE_TRAIN", "(96,)",
    "INPUT.MAX_SIZE_TRAIN", "128",
    "INPUT.MIN_SIZE_TEST", "96",
    "INPUT.MAX_SIZE_TEST", "128",
    "SOLVER.IMS_PER_BATCH", "2",
    "DATALOADER.NUM_WORKERS", "0",
]


@pytest.fixture(scope="session")
def miniature_root():
    """Path of the miniature dataset tree (written on first use)."""
    from alpseg.data.miniature import write_miniature_world

    write_miniature_world(MINIATURE_ROOT, seed=0)
    return MINIATURE_ROOT


@pytest.fixture
def tiny_opts():
    return list(TINY_MODEL_OPTS)
