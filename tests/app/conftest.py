"""Miniature demo outputs for the app tests, laid out as ``tools/run_demo.py`` writes them.

``<demo>/datasets`` is the miniature world with its curated ALPs, ``<demo>/phrase_bank.npz`` a bank with
random unit rows for every miniature phrase, ``<demo>/fcos_mo_alp/`` a demo-size FCOS-MO trained 40
iterations by ``tools/train_net.py`` (config.yaml + model_final.pth), and ``<demo>/results.json`` and
``<demo>/fcos_mo_alp/results.json`` results files (demo and train_net layouts) with known numbers.
"""
import fcntl
import json
import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OID_ALPS = os.path.join("alps", "locnar_oid_train_alps.json")

# What the Results tab must show for DEMO_RESULTS (AP50 in percent, as the demo writes them).
DEMO_RESULTS = {
    "models": {
        "open_vocab": {"AP50_base": 90.0, "AP50_novel": 28.1, "AP50": 59.05},
        "fcos_mo_alp": {"AP50_base": 79.3, "AP50_novel": 44.0, "AP50": 61.65,
                        "per_seed": {"0": {"AP50_base": 79.3, "AP50_novel": 44.0}}},
    },
    "seed": 0,
    "minutes": 5.7,
}
# tools/train_net.py's results.json of the model (detectron2 layout, per-category AP50 in percent)
MODEL_RESULTS = {"oid_challenge": {"AP50": 61.65, "AP50-base": 79.3, "AP50-novel": 44.0, "AP50-apple": 92.5,
                                   "AP50-bird": 66.1, "AP50-dolphin": 51.0, "AP50-snail": 37.0}}


def _write_bank(path, phrases):
    from alpseg.testing import write_random_phrase_bank

    write_random_phrase_bank(path, sorted(phrases), 512, "single")


@pytest.fixture(scope="session")
def demo_outputs(miniature_with_alps, tmp_path_factory):
    """Built once per test run: pytest-xdist workers share the folder (the first builds, the others wait)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, common to all workers
    out = root / "app-demo"
    with open(str(out) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "done").is_file():
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            _build_demo_outputs(out, miniature_with_alps)
            (out / "done").write_text("")
    return str(out)


def _build_demo_outputs(out, miniature_with_alps):
    from alpseg.data.miniature import CLASSES

    os.symlink(miniature_with_alps, out / "datasets")
    with open(os.path.join(miniature_with_alps, OID_ALPS), encoding="utf-8") as f:
        phrases = set(json.load(f)["phrases"]) | {c.name for c in CLASSES}
    bank = str(out / "phrase_bank.npz")
    _write_bank(bank, phrases)
    model_dir = out / "fcos_mo_alp"
    cmd = [sys.executable, os.path.join(REPO, "tools", "train_net.py"), "--config-file",
           os.path.join(REPO, "configs", "demo", "fcos_mo_alp.yaml"), "--num-gpus", "0",
           "OUTPUT_DIR", str(model_dir), "MODEL.OPEN_VOCAB.EMBEDDINGS", bank, "SOLVER.MAX_ITER", "40",
           "SOLVER.WARMUP_ITERS", "1", "SOLVER.IMS_PER_BATCH", "2", "DATASETS.TEST", "()", "SEED", "0",
           # an untrained model scores (almost) nothing: keep every candidate so that tables have rows
           "MODEL.FCOS_MO.SCORE_THRESH_TEST", "-1.0", "MODEL.FCOS_MO.DETECTIONS_PER_IMAGE", "10"]
    env = dict(os.environ, DETECTRON2_DATASETS=miniature_with_alps, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for path, results in ((out / "results.json", DEMO_RESULTS), (model_dir / "results.json", MODEL_RESULTS)):
        with open(path, "w", encoding="utf-8") as f:
            json.dump(results, f)
