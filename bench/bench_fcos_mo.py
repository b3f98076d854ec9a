#!/usr/bin/env python
"""FCOS-MO against detectron2's own FCOS: train-step and inference time on the same input.

Both models get the same ResNet-50 + FPN backbone recipe (detectron2's FCOS 1x: MSRA R-50 layout,
res2+ trainable, GN towers; BN instead of FrozenBN in both, because FrozenBN over random weights
lets activations overflow) and the same batch of images with the same boxes. FCOS-MO is
built from ``configs/fcos_reimpl/fcos_R_50_FPN_1x_mask.yaml`` with ``META_ARCHITECTURE FCOSMO``
(the config itself builds the closed-vocabulary FCOSMask of Table 2; Hourglass-20 mask head) and, to
isolate the mask head's cost, also with ``MODEL.MASK_ON False``. detectron2's FCOS is the model-zoo
``COCO-Detection/fcos_R_50_FPN_1x.py``. Weights are random (timing only); score thresholds are set
equal (0.05) so both decode the same number of top-k candidates per level.

Runs are interleaved (model A step, model B step, ...) after warm-up, and medians are reported.

    python bench/bench_fcos_mo.py --quick            # 2 images of 256x320, a few steps
    python bench/bench_fcos_mo.py --size 800 1024    # larger inputs
    python bench/bench_fcos_mo.py --device cuda --amp --size 1024 1024 --images 4   # one GPU's share of the paper's batch
    python bench/bench_fcos_mo.py --quick --also-width 128   # + FCOS-MO with another hourglass width, same loop

Prints a JSON report (also written to ``--output``). On a shared CPU pin the cores
(``taskset -c 0,1``) and compare only figures from one run.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from typing import Callable, Dict, List, Sequence

import torch

from detectron2 import model_zoo
from detectron2.config import instantiate
from detectron2.modeling import build_model
from detectron2.structures import Boxes
from detectron2.utils.events import EventStorage

from alpseg.config import load_config
from alpseg.testing import random_batch, random_phrase_bank
from alpseg.utils.io import atomic_write

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONFIG = os.path.join(ROOT, "configs", "fcos_reimpl", "fcos_R_50_FPN_1x_mask.yaml")
NUM_CLASSES = 80
# Detections per image that a trained model keeps (score >= 0.05, after NMS) and the distinct boxes among
# them: the demo's FCOS-MO + ALPs models (configs/demo/fcos_mo_alp.yaml, 400 iterations, 18-class
# miniature vocabulary) keep 97.7 detections per image over 27.6 distinct boxes (seed 0, 40 validation
# images; docs/benchmarks.md gives all seeds): class-specific NMS keeps one box for several phrases,
# and the mask head runs once per distinct box (alpseg.modeling.roi_heads.mask_inference).
REALISTIC_DETECTIONS = 98
REALISTIC_DISTINCT_BOXES = 28
# The worst case for the mask head: 100 detections per image, every box distinct.
WORST_CASE_DETECTIONS = 100


def build_fcos_mo(mask_on: bool, hourglass_width: int = 0) -> torch.nn.Module:
    """FCOS-MO on the bench recipe; ``hourglass_width`` 0 keeps the config's width."""
    # The Table 2 config builds the closed-vocabulary FCOSMask; the open-vocabulary FCOSMO on its recipe:
    width = ["MODEL.ROI_MASK_HEAD.HOURGLASS_WIDTH", str(hourglass_width)] if hourglass_width else []
    cfg = load_config(CONFIG, ["MODEL.META_ARCHITECTURE", "FCOSMO",
                               "MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", "MODEL.MASK_ON", str(mask_on),
                               "MODEL.RESNETS.NORM", "BN", "MODEL.FCOS_MO.NMS_THRESH_TEST", "0.6", *width])
    model = build_model(cfg)
    bank = random_phrase_bank([f"class {k}" for k in range(NUM_CLASSES)], cfg.MODEL.OPEN_VOCAB.EMBED_DIM, encoder="random")
    model.phrase_bank = bank
    model.set_test_vocabulary(bank.phrases)
    return model


def build_d2_fcos() -> torch.nn.Module:
    cfg = model_zoo.get_config("COCO-Detection/fcos_R_50_FPN_1x.py")
    cfg.model.num_classes = NUM_CLASSES
    cfg.model.test_score_thresh = 0.05
    cfg.model.backbone.bottom_up.stem.norm = "BN"
    cfg.model.backbone.bottom_up.stages.norm = "BN"
    return instantiate(cfg.model)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _train_step(model: torch.nn.Module, batch, opt, device: str = "cpu", amp: bool = False) -> Callable[[], None]:
    """One SGD step (AMP with a GradScaler when ``amp``, as detectron2's AMPTrainer does)."""
    scaler = torch.amp.GradScaler(device.split(":")[0], enabled=amp)

    def step():
        with EventStorage(), torch.autocast(device.split(":")[0], enabled=amp):
            losses = model(batch)
        opt.zero_grad()
        scaler.scale(sum(losses.values())).backward()
        scaler.step(opt)
        scaler.update()
        _sync(device)
    return step


def _infer_step(model: torch.nn.Module, batch, device: str = "cpu", amp: bool = False) -> Callable[[], None]:
    images = [{k: v for k, v in d.items() if k != "instances"} for d in batch]

    def step():
        with torch.no_grad(), torch.autocast(device.split(":")[0], enabled=amp):
            model(images)
        _sync(device)
    return step


def _shaped(model: torch.nn.Module, step: Callable[[], None], detections: int, distinct: int) -> Callable[[], None]:
    """``step`` with each image's final detections reshaped to ``detections`` rows over ``distinct``
    distinct boxes (before the mask head), keeping the model's scores and phrases.

    Random weights give neither a trained model's count nor its duplicates: the boxes are the model's
    top-scoring ones, made at least 8 px wide and high (random boxes are often empty, and detectron2's
    post-processing would drop them before the paste), shifted apart where they coincide, and dealt
    out round-robin over the detections."""
    decode = model.inference_single_image

    def reshape(*args, **kwargs):
        inst = decode(*args, **kwargs)
        if len(inst) == 0:
            return inst
        h, w = inst.image_size
        rows = inst[torch.arange(detections) % len(inst)]
        base = inst.pred_boxes.tensor[torch.arange(distinct) % len(inst)].clone()
        base[:, 2:] = torch.maximum(base[:, 2:], base[:, :2] + 8)
        base[:, 0::2] = base[:, 0::2].clamp(0, w - 9)
        base[:, 1::2] = base[:, 1::2].clamp(0, h - 9)
        base += torch.arange(distinct, dtype=base.dtype, device=base.device)[:, None] * 0.01  # all distinct
        rows.pred_boxes = Boxes(base[torch.arange(detections) % distinct])
        return rows

    def run():
        model.inference_single_image = reshape
        try:
            step()
        finally:
            del model.inference_single_image  # back to the class's method
    return run


def _interleaved_medians(steps: Dict[str, Callable[[], None]], warmup: int, repeats: int,
                         failed: Dict[str, str] = None) -> Dict[str, float]:
    """Median seconds per step; a step that raises is dropped and its error kept in ``failed``."""
    failed = {} if failed is None else failed
    times: Dict[str, List[float]] = {k: [] for k in steps}
    for i in range(warmup + repeats):
        for name, fn in steps.items():
            if name in failed:
                continue
            t0 = time.perf_counter()
            try:
                fn()
            except RuntimeError as e:
                failed[name] = f"{type(e).__name__}: {e}"[:300]
                continue
            if i >= warmup:
                times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items() if v}


def run(size=(384, 512), num_images: int = 2, instances_per_image: int = 8, warmup: int = 2, repeats: int = 5,
        device: str = "cpu", amp: bool = False, realistic_detections: int = REALISTIC_DETECTIONS,
        realistic_distinct: int = REALISTIC_DISTINCT_BOXES, fuse: bool = False,
        also_widths: Sequence[int] = ()) -> Dict:
    """Train and inference medians of the three models, all interleaved in one loop. FCOS-MO's inference
    (``fcos_mo``) runs at 100 detections per image with 100 distinct boxes (the mask head's worst case),
    and again (``fcos_mo_realistic``) at ``realistic_detections`` over ``realistic_distinct`` boxes (a
    trained model's count); detectron2's FCOS keeps its own 100.

    With ``fuse`` every model (detectron2's FCOS too) has its batch norms folded into the convs for
    inference (``alpseg.export.fuse_conv_bn_``, opt-in for exports); ``fcos_mo_unfused`` keeps an
    unfolded copy of FCOS-MO in the same loop, so the effect is measured in the same run.

    Each of ``also_widths`` adds FCOS-MO with that hourglass width (``fcos_mo_w<W>``, trained and timed at
    both detection counts in the same loop): the mask head's cost per width in one run."""
    torch.manual_seed(0)
    batch = random_batch(num_images, size, instances_per_image, NUM_CLASSES)
    models = {"d2_fcos": build_d2_fcos(), "fcos_mo": build_fcos_mo(True), "fcos_mo_no_mask": build_fcos_mo(False)}
    variants = ["fcos_mo"] + [f"fcos_mo_w{w}" for w in also_widths]
    models.update({f"fcos_mo_w{w}": build_fcos_mo(True, w) for w in also_widths})
    train = {}
    for name, m in models.items():
        m.to(device).train()
        opt = torch.optim.SGD(m.parameters(), lr=1e-4, momentum=0.9)
        train[name] = _train_step(m, batch, opt, device, amp)
    failed: Dict[str, Dict[str, str]] = {"train": {}, "infer": {}}
    train_t = _interleaved_medians(train, warmup, repeats, failed["train"])
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
    for m in models.values():
        m.eval()
    if fuse:
        from alpseg.export import fuse_conv_bn_

        models["fcos_mo_unfused"] = copy.deepcopy(models["fcos_mo"])
        for name, m in models.items():
            if name != "fcos_mo_unfused":
                fuse_conv_bn_(m)
    infer_steps = {k: _infer_step(m, batch, device, amp) for k, m in models.items()}
    # FCOS-MO in the mask head's worst case (100 distinct boxes) and at a trained model's count and duplicates
    for k in variants:
        infer_steps[k] = _shaped(models[k], infer_steps[k], WORST_CASE_DETECTIONS, WORST_CASE_DETECTIONS)
        infer_steps[f"{k}_realistic"] = _shaped(models[k], _infer_step(models[k], batch, device, amp),
                                                realistic_detections, realistic_distinct)
    with torch.no_grad():
        kept = [len(r["instances"]) for r in models["fcos_mo"]([{k: v for k, v in d.items() if k != "instances"}
                                                                 for d in batch])]
    infer_t = _interleaved_medians(infer_steps, warmup, repeats, failed["infer"])
    ratios = {
        f"{k}_{phase}_vs_d2_fcos": t[k] / t["d2_fcos"]
        for phase, t in (("train", train_t), ("infer", infer_t)) if "d2_fcos" in t for k in t
        if k != "d2_fcos" and not k.endswith("_realistic")
    }
    for k in variants:
        if f"{k}_realistic" in infer_t and "d2_fcos" in infer_t:
            ratios[f"{k}_infer_vs_d2_fcos_realistic"] = infer_t[f"{k}_realistic"] / infer_t["d2_fcos"]
    return {
        "input": {"images": num_images, "size": list(size), "instances_per_image": instances_per_image,
                  "threads": torch.get_num_threads(), "device": device, "amp": amp, "repeats": repeats,
                  "peak_train_memory_gib_all_models": peak},
        "train_step_s": train_t,
        "infer_s": infer_t,
        # detections per image FCOS-MO keeps uncapped (random weights: the maximum), and the realistic cap
        "fcos_mo_detections_per_image": kept,
        "inference_batch_norms_folded": fuse,
        "hourglass_widths": {k: models[k].mask_head.predictor.in_channels for k in variants},
        "realistic_detections_per_image": realistic_detections,
        "realistic_distinct_boxes_per_image": realistic_distinct,
        "failed": failed,
        "ratios": ratios,
    }


def cli(run_fn: Callable[..., Dict], doc: str, argv=None, warmup: int = 2, amp: bool = True,
        widths: bool = False) -> Dict:
    """The command line shared by the model benchmarks: ``--quick``, sizes, repeats, ``--output``.

    ``run_fn(size, images, instances, warmup=, repeats=[, device=][, amp=])`` makes the report;
    ``warmup`` is its number of warm-up steps outside ``--quick``; ``amp`` offers ``--amp`` (only for a
    ``run_fn`` that takes it); ``widths`` offers ``--also-width`` (passed as ``also_widths``). The report is
    printed and, with ``--output``, written atomically.
    """
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 images of 256x320, 1 warm-up, 3 repeats")
    parser.add_argument("--size", type=int, nargs=2, default=[384, 512], metavar=("H", "W"))
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--instances", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="e.g. cuda")
    if amp:
        parser.add_argument("--amp", action="store_true", help="mixed precision (the paper's setting on GPU)")
    if widths:
        parser.add_argument("--also-width", type=int, action="append", default=[], metavar="W",
                            help="also time FCOS-MO with hourglass width W in the same loop (repeatable)")
    parser.add_argument("--output", default="")
    args = parser.parse_args(argv)
    extra: Dict = {"device": args.device} if args.device != "cpu" else {}
    if widths and args.also_width:
        extra["also_widths"] = args.also_width
    if amp and args.amp:
        extra["amp"] = True
    if args.quick:
        report = run_fn((256, 320), args.images, args.instances, warmup=1, repeats=3, **extra)
    else:
        report = run_fn(tuple(args.size), args.images, args.instances, warmup=warmup, repeats=args.repeats, **extra)
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        atomic_write(args.output, text + "\n")
    return report


if __name__ == "__main__":
    cli(run, __doc__, widths=True)
