"""tools/train_net.py: the detectron2-standard CLI, a CPU run that checkpoints, and --resume."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN_NET = os.path.join(REPO, "tools", "train_net.py")


def _run(args, env_root):
    env = dict(os.environ, DETECTRON2_DATASETS=env_root, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, TRAIN_NET] + args, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_help_lists_the_standard_flags():
    out = subprocess.run([sys.executable, TRAIN_NET, "--help"], capture_output=True, text=True, cwd=REPO).stdout
    for flag in ("--config-file", "--num-gpus", "--num-machines", "--machine-rank", "--dist-url", "--resume",
                 "--eval-only", "opts"):
        assert flag in out


def _iterations(out_dir):
    with open(os.path.join(out_dir, "metrics.json")) as f:
        return [json.loads(line)["iteration"] for line in f if '"iteration"' in line]


@pytest.mark.timeout(900)
def test_stock_mask_rcnn_trains_checkpoints_and_resumes(miniature_root, tiny_opts, tmp_path):
    out = str(tmp_path / "run")
    common = ["--config-file", "model_zoo_mask_rcnn.yaml", "--num-gpus", "0"]
    cfg = tmp_path / "model_zoo_mask_rcnn.yaml"
    cfg.write_text('_BASE_: "model_zoo://COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"\n'
                   'DATASETS:\n  TRAIN: ("coco_2017_train",)\n  TEST: ()\n'
                   "MODEL:\n  RPN:\n    POST_NMS_TOPK_TRAIN: 64\n  ROI_HEADS:\n    BATCH_SIZE_PER_IMAGE: 32\n")
    common[1] = str(cfg)
    opts = tiny_opts + ["OUTPUT_DIR", out, "SOLVER.CHECKPOINT_PERIOD", "2", "SOLVER.BASE_LR", "0.001",
                        "SOLVER.WARMUP_ITERS", "0"]
    _run(common + opts + ["SOLVER.MAX_ITER", "2"], miniature_root)
    assert os.path.isfile(os.path.join(out, "model_final.pth"))
    assert open(os.path.join(out, "last_checkpoint")).read().strip() == "model_final.pth"
    assert max(_iterations(out)) == 1  # iterations 0 and 1
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(out))  # TensorBoard

    # --resume with a longer schedule continues at iteration 2, not from scratch.
    proc = _run(common + ["--resume"] + opts + ["SOLVER.MAX_ITER", "4"], miniature_root)
    assert "Starting training from iteration 2" in proc.stdout + proc.stderr
    assert max(_iterations(out)) == 3
