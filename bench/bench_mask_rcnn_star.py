#!/usr/bin/env python
"""Mask R-CNN* against detectron2's stock Mask R-CNN R50-FPN: train-step and inference time.

Both models get the same ResNet-50 + FPN recipe (detectron2's ``mask_rcnn_R_50_FPN_3x``: MSRA R-50
layout, res2+ trainable, 2-fc box head; BN instead of FrozenBN because the weights are random) and the same batch of images, boxes and masks, so
the ratio measures what Mask R-CNN* changes in the heads: the open-vocabulary classifier against the
batch's phrases, class-agnostic deltas, the Hourglass-20 mask head on GT boxes (train) / detections
(test), calibrated scores and, since the paper's heads became the default, the 4conv1fc box head with
synchronized BN. Two more models isolate parts of that: Mask R-CNN* with detectron2's 4-conv mask head
(the cost of the hourglass) and Mask R-CNN* with detectron2's 2-fc box head (like for like with the
stock box head, whose weights it then shares). Weights are random (timing only); the test score threshold is 0 and the NMS
threshold 0.5 for all models, so each runs its mask head on the same 100 detections per image.

Runs are interleaved (model A step, model B step, ...) after warm-up, and medians are reported.

    python bench/bench_mask_rcnn_star.py --quick            # 2 images of 256x320, a few steps
    python bench/bench_mask_rcnn_star.py --size 512 640     # larger inputs
    python bench/bench_mask_rcnn_star.py --device cuda --size 1024 1024 --images 4 --instances 16

Prints a JSON report (also written to ``--output``). On a shared CPU pin the cores
(``taskset -c 0,1``) and compare only figures from one run.
"""
from __future__ import annotations

import os
from typing import Callable, Dict, List

import torch

from detectron2 import model_zoo
from detectron2.modeling import build_model

from alpseg.config import get_cfg, load_config
from alpseg.data.mapper import PhraseList
from alpseg.testing import random_batch, random_phrase_bank
from bench_fcos_mo import NUM_CLASSES, _infer_step, _interleaved_medians, _train_step, cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

STAR_CONFIG = os.path.join(ROOT, "configs", "Base-MaskRCNNStar.yaml")
STOCK_CONFIG = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"
# Random weights: trainable BN in both backbones keeps a random ResNet-50 from overflowing.
COMMON = ["MODEL.WEIGHTS", "", "MODEL.RESNETS.NORM", "BN", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0",
          "MODEL.ROI_HEADS.NMS_THRESH_TEST", "0.5", "SOLVER.AMP.ENABLED", "False"]
# The stock recipe's backbone for Mask R-CNN* too, so that only the heads differ.
SAME_BACKBONE = ["MODEL.FPN.NORM", "", "MODEL.BACKBONE.FREEZE_AT", "2",
                 "MODEL.RESNETS.STRIDE_IN_1X1", "True", "MODEL.PIXEL_MEAN", "[103.53, 116.28, 123.675]",
                 "MODEL.PIXEL_STD", "[1.0, 1.0, 1.0]", "INPUT.FORMAT", "BGR"]


def build_stock(device: str) -> torch.nn.Module:
    cfg = get_cfg()
    cfg.merge_from_file(model_zoo.get_config_file(STOCK_CONFIG))
    cfg.merge_from_list(COMMON + ["MODEL.DEVICE", device, "MODEL.ROI_HEADS.NUM_CLASSES", str(NUM_CLASSES)])
    return build_model(cfg)


def build_star(device: str, extra: List[str]) -> torch.nn.Module:
    cfg = load_config(STAR_CONFIG, COMMON + SAME_BACKBONE + ["MODEL.DEVICE", device] + extra)
    model = build_model(cfg)
    bank = random_phrase_bank([f"class {k}" for k in range(NUM_CLASSES)], cfg.MODEL.OPEN_VOCAB.EMBED_DIM, encoder="random")
    model.phrase_bank = bank
    model.set_test_vocabulary(bank.phrases)
    return model


def _build_all(device: str) -> Dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {
        "d2_mask_rcnn": build_stock(device),
        "mask_rcnn_star": build_star(device, []),
        "mask_rcnn_star_4conv_mask": build_star(device, ["MODEL.ROI_MASK_HEAD.NAME", "MaskRCNNConvUpsampleHead",
                                                 "MODEL.ROI_MASK_HEAD.NUM_CONV", "4", "MODEL.ROI_MASK_HEAD.NORM", "",
                                                 "MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION", "14"]),
        "mask_rcnn_star_2fc_box": build_star(device, ["MODEL.ROI_BOX_HEAD.NUM_CONV", "0", "MODEL.ROI_BOX_HEAD.NUM_FC",
                                              "2", "MODEL.ROI_BOX_HEAD.NORM", ""]),
    }


def _same_shapes(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(sa[k].shape == sb[k].shape for k in sa)


def _share_detector_weights(models: Dict[str, torch.nn.Module]) -> None:
    """Give every model the stock model's backbone and RPN, so they all see the same features and
    proposals and only their own heads differ, and its box head where the architecture is the same
    (Mask R-CNN*'s default 4conv1fc head keeps its own random weights)."""
    stock = models["d2_mask_rcnn"]
    for name, m in models.items():
        if m is not stock:
            for part in ("backbone", "proposal_generator"):
                getattr(m, part).load_state_dict(getattr(stock, part).state_dict())
            if _same_shapes(m.roi_heads.box_head, stock.roi_heads.box_head):
                m.roi_heads.box_head.load_state_dict(stock.roi_heads.box_head.state_dict())


@torch.no_grad()
def _calibrate_norms(model: torch.nn.Module, batch) -> None:
    """Random weights with fresh BN statistics blow features up at test time, leaving almost no
    proposal; estimate the backbone's BN statistics on the batch first (cumulative average)."""
    norms = [m for m in model.backbone.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.backbone.train()
    images = model.preprocess_image(batch)
    for _ in range(3):
        model.backbone(images.tensor)


@torch.no_grad()
def _count_detections(model: torch.nn.Module, batch) -> List[int]:
    images = [{k: v for k, v in d.items() if k != "instances"} for d in batch]
    return [len(o["instances"]) for o in model(images)]


def _synchronized(steps: Dict[str, Callable[[], None]], device: str) -> Dict[str, Callable[[], None]]:
    """On a GPU a step ends when its kernels have run, not when they were queued."""
    if not device.startswith("cuda"):
        return steps
    return {k: (lambda fn=fn: (fn(), torch.cuda.synchronize())) for k, fn in steps.items()}


def run(size=(384, 512), num_images: int = 2, instances_per_image: int = 8, warmup: int = 2, repeats: int = 5,
        device: str = "cpu") -> Dict:
    torch.manual_seed(0)
    batch = random_batch(num_images, size, instances_per_image, NUM_CLASSES)
    for d in batch:  # the mapper's indexable phrase list, which stock proposal sampling can slice
        d["instances"].gt_phrases = PhraseList(d["instances"].gt_phrases)
    models = _build_all(device)
    train = {}
    for name, m in models.items():
        m.train()
        train[name] = _train_step(m, batch, torch.optim.SGD(m.parameters(), lr=1e-4, momentum=0.9))
    _share_detector_weights(models)
    train_t = _interleaved_medians(_synchronized(train, device), warmup, repeats)
    # Inference on fresh models: random weights drift apart differently in training, and with a score
    # threshold of 0 the (data-dependent) per-class NMS of 80 x 1000 candidates dominates test time.
    del models, train
    models = _build_all(device)
    _calibrate_norms(models["d2_mask_rcnn"], batch)
    _share_detector_weights(models)
    for m in models.values():
        m.eval()
    infer = {k: _infer_step(m, batch) for k, m in models.items()}
    infer_t = _interleaved_medians(_synchronized(infer, device), warmup, repeats)
    detections = {k: _count_detections(m, batch) for k, m in models.items()}
    return {
        "input": {"images": num_images, "size": list(size), "instances_per_image": instances_per_image,
                  "threads": torch.get_num_threads(), "repeats": repeats,
                  "device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"},
        "train_step_s": train_t,
        "infer_s": infer_t,
        "detections_per_image": detections,
        "box_head": {k: type(m.roi_heads.box_head).__name__ + f" ({len(m.roi_heads.box_head.conv_norm_relus)} conv, "
                        f"{len(m.roi_heads.box_head.fcs)} fc)" for k, m in models.items()},
        "ratios": {
            f"{k}_{phase}_vs_d2_mask_rcnn": t[k] / t["d2_mask_rcnn"]
            for phase, t in (("train", train_t), ("infer", infer_t)) for k in t if k != "d2_mask_rcnn"
        },
    }


def main(argv=None) -> Dict:
    return cli(run, __doc__, argv, warmup=3, amp=False)


if __name__ == "__main__":
    main()
