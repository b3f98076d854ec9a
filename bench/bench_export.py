#!/usr/bin/env python
"""CPU latency of an exported FCOS-MO or Mask R-CNN*: PyTorch eager vs ONNX Runtime vs TorchScript,
one run.

The same model (a config of either meta-architecture, random weights unless ``--weights``) is exported to ONNX and TorchScript
with a vocabulary baked in, then the three run the same pre-processed images one after the other
(eager, eager with folded batch norms, ONNX Runtime, TorchScript, eager, ...) after warm-up; the
report gives medians per image and the ratios to eager PyTorch (batch norms not folded), for the graph alone (what is exported) and end to end (reading
excluded: pre-processing, graph, ``detector_postprocess`` with mask pasting). Every runtime uses the
same number of threads (``--threads``, default 1).

    python bench/bench_export.py                                   # demo-size model, 96 px, 1 thread
    python bench/bench_export.py --config-file configs/fcos_reimpl/fcos_R_50_FPN_1x_mask.yaml --size 512 512
    python bench/bench_export.py --weights output/demo/fcos_mo_alp/model_final.pth --images DIR/*.jpg
    python bench/bench_export.py --config-file configs/demo/mask_rcnn_star_alp.yaml --images DIR/*.jpg

With random weights every image keeps the maximum of 100 detections (the mask head's worst case).
"""
from __future__ import annotations

import argparse
import copy
import glob
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Callable, Dict, List

import numpy as np
import torch

# alpseg comes from the installed package (make setup installs it editable), not a sys.path edit
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import alpseg  # noqa: F401
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data.detection_utils import read_image
from detectron2.modeling import build_model

from alpseg.config import load_config
from alpseg.export import (
    OnnxPredictor,
    TorchScriptPredictor,
    export_model,
    fuse_conv_bn_,
    postprocess,
    preprocess,
)
from alpseg.export.exporter import model_kind, trace_inference
from alpseg.utils.io import atomic_write_json

VOCABULARY = ["person", "dog", "cat", "car", "bicycle", "bird", "apple", "umbrella", "dolphin", "starfish"]


def _images(args) -> List[np.ndarray]:
    if args.images:
        paths = sorted({p for pattern in args.images for p in glob.glob(pattern)})
        if not paths:
            raise SystemExit(f"error: no image matches {args.images}")
        return [read_image(p, format="BGR") for p in paths[: args.num_images]]
    rng = np.random.RandomState(0)
    h, w = args.size
    return [rng.randint(0, 256, size=(h, w, 3)).astype(np.uint8) for _ in range(args.num_images)]


def run(args) -> Dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    opts = ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", ""] + (["MODEL.RESNETS.NORM", "BN"] if not args.weights else [])
    cfg = load_config(args.config_file, opts + args.opts)
    model = build_model(cfg).eval()
    if args.weights:
        DetectionCheckpointer(model).load(args.weights)
    emb = torch.nn.functional.normalize(torch.randn(len(VOCABULARY), cfg.MODEL.OPEN_VOCAB.EMBED_DIM), dim=1)
    pre = {"preprocessing": {"input_format": cfg.INPUT.FORMAT, "min_size_test": cfg.INPUT.MIN_SIZE_TEST,
                             "max_size_test": cfg.INPUT.MAX_SIZE_TEST}}
    images = _images(args)
    inputs = [preprocess(im, pre) for im in images]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        onnx_path = export_model(model, VOCABULARY, emb, inputs[0], tmp, "onnx", preprocessing=pre["preprocessing"])
        export_onnx_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ts_path = export_model(model, VOCABULARY, emb, inputs[0], tmp, "torchscript",
                               preprocessing=pre["preprocessing"])
        export_ts_s = time.perf_counter() - t0
        runtimes = {"onnxruntime": OnnxPredictor(onnx_path, num_threads=args.threads),
                    "torchscript": TorchScriptPredictor(ts_path)}

        model.set_test_vocabulary(VOCABULARY, emb)
        fused = copy.deepcopy(model)
        fuse_conv_bn_(fused)

        def eager(m):
            def graph_fn(x):
                with torch.no_grad():
                    return trace_inference(m, x)
            return graph_fn

        graph: Dict[str, Callable] = {"pytorch": eager(model), "pytorch_folded_bn": eager(fused),
                                      **{k: r.raw for k, r in runtimes.items()}}

        def end_to_end(fn):
            def step(image):
                x = preprocess(image, pre)
                return postprocess(fn(x), tuple(x.shape[1:]), image.shape[:2])
            return step

        times: Dict[str, Dict[str, List[float]]] = {"graph": {k: [] for k in graph},
                                                      "end_to_end": {k: [] for k in graph}}
        detections = []
        for rep in range(args.warmup + args.repeats):
            for k, fn in graph.items():
                for part, step, data in (("graph", fn, inputs), ("end_to_end", end_to_end(fn), images)):
                    for item in data:
                        t0 = time.perf_counter()
                        out = step(item)
                        dt = time.perf_counter() - t0
                        if rep >= args.warmup:
                            times[part][k].append(dt)
                        if part == "graph" and k == "pytorch" and rep == 0:
                            detections.append(int(out[0].shape[0]))
    med = {part: {k: statistics.median(v) for k, v in t.items()} for part, t in times.items()}
    return {
        "config": os.path.relpath(args.config_file, ROOT), "model_kind": model_kind(model),
        "weights": args.weights or "random",
        "images": len(images), "input_size": list(inputs[0].shape[1:]), "threads": args.threads,
        "repeats": args.repeats, "detections_per_image": detections, "load_average_at_start": args.load,
        "export_s": {"onnx": round(export_onnx_s, 1), "torchscript": round(export_ts_s, 1)},
        "median_s_per_image": {part: {k: round(v, 4) for k, v in m.items()} for part, m in med.items()},
        "ratio_to_pytorch": {part: {k: round(v / m["pytorch"], 3) for k, v in m.items() if k != "pytorch"}
                             for part, m in med.items()},
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", default=os.path.join(ROOT, "configs", "demo", "fcos_mo_alp.yaml"))
    p.add_argument("--weights", default="", help="a checkpoint (default: random weights)")
    p.add_argument("--images", nargs="*", default=[], help="image files / globs (default: random images)")
    p.add_argument("--num-images", type=int, default=4)
    p.add_argument("--size", type=int, nargs=2, default=[128, 128], metavar=("H", "W"),
                   help="size of the random images (the test-time resize still applies)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--output", default="")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = p.parse_args(argv)
    args.load = os.getloadavg()[0]
    report = run(args)
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        atomic_write_json(args.output, report, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
