import os

import pytest

from alpseg.config import get_cfg, load_config

ZOO = "model_zoo://COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return str(path)


def test_defaults_are_the_papers():
    cfg = get_cfg()
    assert cfg.MODEL.OPEN_VOCAB.TEMPERATURE == 0.01
    assert cfg.MODEL.OPEN_VOCAB.BG_ALPHA == 0.1
    assert cfg.MODEL.OPEN_VOCAB.EMBED_DIM == 512
    assert cfg.MODEL.ROI_MASK_HEAD.HOURGLASS_DEPTH == 20
    assert list(cfg.INPUT.ALP.BOX_QUANTIZATION) == [0, 8, 16, 32]
    assert (cfg.INPUT.LSJ.MIN_SCALE, cfg.INPUT.LSJ.MAX_SCALE, cfg.INPUT.LSJ.IMAGE_SIZE) == (0.5, 2.0, 1024)
    assert cfg.MODEL.FCOS_MO.NMS_THRESH_TEST == 0.2
    assert cfg.MODEL.FCOS_MO.CENTER_SAMPLING_RADIUS == 1.5


def test_model_zoo_base_with_child_overrides(tmp_path):
    child = _write(tmp_path / "child.yaml", f'_BASE_: "{ZOO}"\nSOLVER:\n  BASE_LR: 0.05\n'
                                            "MODEL:\n  OPEN_VOCAB:\n    TEMPERATURE: 0.02\n")
    cfg = load_config(child)
    # Values of the model-zoo chain (mask_rcnn_R_50_FPN_3x -> ../Base-RCNN-FPN.yaml) ...
    assert cfg.MODEL.MASK_ON is True
    assert cfg.MODEL.RESNETS.DEPTH == 50
    assert cfg.SOLVER.MAX_ITER == 270000
    assert tuple(cfg.SOLVER.STEPS) == (210000, 250000)
    assert cfg.MODEL.ROI_HEADS.NAME == "StandardROIHeads"
    # ... with the child's overrides applied.
    assert cfg.SOLVER.BASE_LR == 0.05
    assert cfg.MODEL.OPEN_VOCAB.TEMPERATURE == 0.02


def test_relative_base_chain_and_opts(tmp_path):
    os.makedirs(tmp_path / "sub")
    _write(tmp_path / "base.yaml", f'_BASE_: "{ZOO}"\nSOLVER:\n  MAX_ITER: 100\n  BASE_LR: 0.1\n')
    child = _write(tmp_path / "sub" / "child.yaml", '_BASE_: "../base.yaml"\nSOLVER:\n  BASE_LR: 0.2\n')
    cfg = load_config(child, ["SOLVER.MAX_ITER", "7"])
    assert (cfg.SOLVER.MAX_ITER, cfg.SOLVER.BASE_LR, cfg.MODEL.RESNETS.DEPTH) == (7, 0.2, 50)


def test_unknown_key_fails_naming_it(tmp_path):
    bad = _write(tmp_path / "bad.yaml", "MODEL:\n  OPEN_VOCAB:\n    TEMPERATUR: 0.02\n")
    with pytest.raises(KeyError, match="MODEL.OPEN_VOCAB.TEMPERATUR"):
        load_config(bad)
    with pytest.raises(KeyError, match="SOLVER.BASE_LRR"):
        load_config(_write(tmp_path / "ok.yaml", "SOLVER:\n  BASE_LR: 0.1\n"), ["SOLVER.BASE_LRR", "1"])


def test_missing_bases_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="model zoo"):
        load_config(_write(tmp_path / "a.yaml", '_BASE_: "model_zoo://No/such.yaml"\n'))
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(_write(tmp_path / "b.yaml", '_BASE_: "nope.yaml"\n'))
