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


def _fails_with_one_line(args, env_root, *expected):
    env = dict(os.environ, DETECTRON2_DATASETS=env_root, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, TRAIN_NET] + args, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr[-3000:]
    for text in expected:
        assert text in errors[0], errors[0]
    return out


def _zoo_cfg(tmp_path):
    cfg = tmp_path / "zoo.yaml"
    cfg.write_text('_BASE_: "model_zoo://COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"\n'
                   'DATASETS:\n  TRAIN: ("coco_2017_train",)\n  TEST: ()\n')
    return str(cfg)


def test_unknown_yaml_key_is_one_line_naming_file_and_key(tmp_path):
    cfg = tmp_path / "typo.yaml"
    cfg.write_text('_BASE_: "model_zoo://COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"\nSOLVER:\n  BASE_LRR: 0.1\n')
    _fails_with_one_line(["--config-file", str(cfg), "--num-gpus", "0"], str(tmp_path), str(cfg), "SOLVER.BASE_LRR")


def test_missing_dataset_root_names_detectron2_datasets_and_the_path(tiny_opts, tmp_path):
    empty = tmp_path / "no_datasets"
    empty.mkdir()
    _fails_with_one_line(["--config-file", _zoo_cfg(tmp_path), "--num-gpus", "0"] + tiny_opts
                         + ["OUTPUT_DIR", str(tmp_path / "o")], str(empty), "DETECTRON2_DATASETS",
                         os.path.join(str(empty), "coco", "annotations", "instances_train2017.json"))


@pytest.mark.parametrize("content", [b"", b"not a checkpoint\n"])
def test_unreadable_model_weights_are_one_line(miniature_root, tiny_opts, tmp_path, content):
    weights = tmp_path / "w.pth"
    weights.write_bytes(content)
    opts = tiny_opts + ["OUTPUT_DIR", str(tmp_path / "o"), "MODEL.WEIGHTS", str(weights), "SOLVER.MAX_ITER", "1"]
    out = _fails_with_one_line(["--config-file", _zoo_cfg(tmp_path), "--num-gpus", "0"] + opts, miniature_root,
                               str(weights))
    assert "Starting training" not in out


def test_phrase_bank_coverage_is_checked_before_iteration_zero(miniature_with_alps, tiny_opts, tmp_path):
    import numpy as np

    from alpseg.text.bank import PhraseBank
    from alpseg.text.encoder import encoder_id

    bank = str(tmp_path / "small.npz")
    emb = np.eye(2, 512, dtype=np.float32)
    PhraseBank(["person", "dog"], emb, encoder_id("ViT-B-32", "none"), "vild").save(bank)
    opts = tiny_opts + ["OUTPUT_DIR", str(tmp_path / "o"), "MODEL.OPEN_VOCAB.EMBEDDINGS", bank,
                        "MODEL.OPEN_VOCAB.PRETRAINED", "none", "DATASETS.TEST", "()", "SOLVER.MAX_ITER", "1",
                        "INPUT.LSJ.IMAGE_SIZE", "96"]
    out = _fails_with_one_line(["--config-file", os.path.join(REPO, "configs", "fcos_mo_coco_oid.yaml"),
                                "--num-gpus", "0"] + opts, miniature_with_alps, bank, "not in the phrase bank",
                               "tools/embed_phrases.py")
    assert "Starting training" not in out
