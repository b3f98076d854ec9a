#!/usr/bin/env python
"""alpseg's benchmark: every figure of docs/benchmarks.md, measured in one process run.

* FCOS-MO vs detectron2's FCOS, and Mask R-CNN* vs detectron2's Mask R-CNN: train step and inference
  on the same input, backbone and batch, interleaved (A, B, A, B, ...) after warm-up, medians
  (``bench_fcos_mo.run`` and ``bench_mask_rcnn_star.run``);
* ALP curation: narratives per second per worker (synthetic LocNar-sized narratives, default spaCy) and
  its ratio to bare spaCy ``nlp.pipe`` on the same captions (``ratios.curation_vs_bare_spacy``);
* the Open Images challenge metric: images per second on a synthetic OID-val-shaped set, and its
  speed-up over the straightforward loop of the tests (same APs), the two timed in alternation;
* phrase encoding: phrases per second with ViT-B-32 (random weights) and the 63 ViLD prompts;
* peak memory of each part (resident-set growth on CPU, ``max_memory_allocated`` on GPU).

    python bench/run.py --quick --output output/bench.json    # about a minute on 2 CPU cores
    python bench/run.py --output output/bench.json            # the paper's input size (LSJ 1024)
    python bench/run.py --device cuda --amp                   # on a GPU: AMP step time and memory

Ratios are alpseg time / detectron2 time (below 1 = faster). Compare figures only within one run.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from typing import Any, Callable, Dict, Tuple

import torch

from alpseg.utils.io import atomic_write_json

# the other bench scripts, from this script's folder (the first entry of sys.path when run as a script)
import bench_curate_alps
import bench_fcos_mo
import bench_mask_rcnn_star
import bench_oid_eval

# (quick, full) settings of each part
SIZES = {"quick": dict(size=(192, 256), num_images=2, warmup=1, repeats=3),
         "full": dict(size=(1024, 1024), num_images=2, warmup=2, repeats=5)}
# Mask R-CNN's quick run uses one image: its three ResNet-50 models dominate the quick run's time
MASK_RCNN_SIZES = {"quick": dict(SIZES["quick"], num_images=1), "full": SIZES["full"]}
CURATION_NARRATIVES = {"quick": 200, "full": 2000}
# quick: a sixth of OID val; 300 images were dominated by the worker start and the GT preparation, and 20
# loop images by which images they were (the ratio moved between 71x and 106x), so both underrated it
OID_EVAL = {"quick": dict(images=2000, loop_images=50), "full": dict(images=12000, loop_images=100)}
PHRASES = {"quick": 4, "full": 32}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Peak growth of resident memory (CPU, sampled every 5 ms) or of CUDA allocations during a block."""

    def __init__(self, device: str):
        self.device = device
        self.peak_gib = 0.0

    def __enter__(self):
        if self.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
            return self
        self._base = self._peak = _rss_bytes()
        self._stop = threading.Event()

        def sample():
            while not self._stop.wait(0.005):
                self._peak = max(self._peak, _rss_bytes())
        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.startswith("cuda"):
            peak = torch.cuda.max_memory_allocated() - self._base
        else:
            self._stop.set()
            self._thread.join()
            peak = max(self._peak, _rss_bytes()) - self._base
        self.peak_gib = round(peak / 2 ** 30, 3)


def _part(name: str, device: str, fn: Callable[[], Any]) -> Tuple[Any, float, float]:
    print(f"[bench] {name} ...", flush=True)
    t0 = time.perf_counter()
    with PeakMemory(device) as mem:
        out = fn()
    wall = time.perf_counter() - t0
    print(f"[bench] {name}: {wall:.1f} s, peak memory +{mem.peak_gib} GiB", flush=True)
    return out, mem.peak_gib, wall


def _curation(n: int) -> Dict[str, float]:
    """Curation throughput and its ratio to bare spaCy ``nlp.pipe`` on the same captions (one worker,
    CPU time of this process, as bench/bench_curate_alps.py measures it)."""
    return bench_curate_alps.measure(n, workers=(), repeats=1)


def _oid_eval(images: int, loop_images: int, rounds: int = 3) -> Dict[str, float]:
    """The fast metric (2 workers, all images) and the straightforward loop (1 process, a subset),
    interleaved: ``rounds`` times the fast metric, each followed by a ``1/rounds`` part of the loop's
    images, so that both see the same load on a shared machine. Each loop part must give the fast
    metric's APs on the same images."""
    from alpseg.evaluation.oid.challenge import evaluate_oid_challenge

    gt, preds = bench_oid_eval.make_dataset(images, 23000 / 12000, 100, 300, seed=0)
    ids = sorted(preds)[:loop_images]
    fast_s, loop_s = [], 0.0
    for part in range(rounds):
        t0 = time.perf_counter()
        fast = evaluate_oid_challenge(gt, preds, num_workers=2, progress=False)
        fast_s.append(time.perf_counter() - t0)
        sub_gt, sub_preds = bench_oid_eval._subset(gt, preds, ids[part::rounds])
        t0 = time.perf_counter()
        loop = bench_oid_eval.run_loop(sub_gt, sub_preds)
        loop_s += time.perf_counter() - t0
        same = evaluate_oid_challenge(sub_gt, sub_preds, num_workers=1, progress=False)["per_class"]
        assert set(same) == set(loop["per_class"]) and all(
            abs(same[k] - v) < 1e-9 for k, v in loop["per_class"].items())
    return {"images_per_s": images * rounds / sum(fast_s), "loop_images_per_s": loop_images / loop_s,
            "mAP": fast["mAP"], "images": images, "loop_images": loop_images, "rounds": rounds}


def _phrase_embedding(n: int, device: str) -> float:
    from alpseg.text.encoder import encode_phrases

    phrases = [f"small object number {i}" for i in range(n)]
    encode_phrases(phrases[:1], "ViT-B-32", "none", "vild", device, 32)  # model load, warm-up
    t0 = time.perf_counter()
    encode_phrases(phrases, "ViT-B-32", "none", "vild", device, 32)
    return n / (time.perf_counter() - t0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small inputs: about a minute on 2 CPU cores")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--amp", action="store_true", help="mixed precision (GPU): the paper's training setting")
    p.add_argument("--skip", nargs="*", default=[], choices=["models", "curation", "oid_eval", "phrases"])
    p.add_argument("--output", default="output/bench.json")
    args = p.parse_args(argv)
    mode = "quick" if args.quick else "full"
    torch.manual_seed(0)
    report: Dict[str, Any] = {
        "mode": mode, "device": args.device, "amp": args.amp, "torch": torch.__version__,
        "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "load_average_at_start": os.getloadavg()[0],
        "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
        "ratios": {}, "throughput": {}, "peak_memory_gib": {}, "seconds": {},
    }
    if "models" not in args.skip:
        fcos, mem, wall = _part("FCOS-MO vs detectron2 FCOS", args.device, lambda: bench_fcos_mo.run(
            **SIZES[mode], device=args.device, amp=args.amp))
        report["fcos"], report["peak_memory_gib"]["fcos_models"], report["seconds"]["fcos"] = fcos, mem, wall
        report["ratios"]["fcos_mo_train_vs_d2_fcos"] = fcos["ratios"].get("fcos_mo_train_vs_d2_fcos")
        report["ratios"]["fcos_mo_infer_vs_d2_fcos"] = fcos["ratios"].get("fcos_mo_infer_vs_d2_fcos")
        # the same at the detection count a trained model keeps (fcos["realistic_detections_per_image"])
        report["ratios"]["fcos_mo_infer_vs_d2_fcos_realistic"] = fcos["ratios"].get("fcos_mo_infer_vs_d2_fcos_realistic")
        star, mem, wall = _part("Mask R-CNN* vs detectron2 Mask R-CNN", args.device, lambda: bench_mask_rcnn_star.run(
            **MASK_RCNN_SIZES[mode], device=args.device))
        report["mask_rcnn"], report["peak_memory_gib"]["mask_rcnn_models"] = star, mem
        report["seconds"]["mask_rcnn"] = wall
        report["ratios"]["mask_rcnn_star_train_vs_d2_mask_rcnn"] = star["ratios"]["mask_rcnn_star_train_vs_d2_mask_rcnn"]
        report["ratios"]["mask_rcnn_star_infer_vs_d2_mask_rcnn"] = star["ratios"]["mask_rcnn_star_infer_vs_d2_mask_rcnn"]
        # the same with detectron2's 2-fc box head, like for like with the stock model's box head
        for phase in ("train", "infer"):
            key = f"mask_rcnn_star_2fc_box_{phase}_vs_d2_mask_rcnn"
            report["ratios"][key] = star["ratios"][key]
    if "curation" not in args.skip:
        cur, mem, wall = _part("ALP curation", "cpu", lambda: _curation(CURATION_NARRATIVES[mode]))
        report["throughput"]["curation_narratives_per_s_per_worker"] = cur["end_to_end_per_s"]
        report["throughput"]["bare_spacy_narratives_per_s"] = cur["bare_spacy_per_s"]
        report["ratios"]["curation_vs_bare_spacy"] = cur["ratio_to_bare_spacy"]  # #24 goal: >= 0.8
        report["peak_memory_gib"]["curation"], report["seconds"]["curation"] = mem, wall
    if "oid_eval" not in args.skip:
        oid, mem, wall = _part("Open Images challenge metric", "cpu", lambda: _oid_eval(**OID_EVAL[mode]))
        report["throughput"]["oid_eval_images_per_s"] = round(oid["images_per_s"], 1)
        report["throughput"]["oid_eval_vs_straightforward_loop"] = round(
            oid["images_per_s"] / oid["loop_images_per_s"], 1)
        report["throughput"]["oid_eval_loop_images_per_s"] = round(oid["loop_images_per_s"], 2)
        report["throughput"]["oid_eval_images"] = oid["images"]  # the fast metric's set (2 workers)
        report["throughput"]["oid_eval_loop_images"] = oid["loop_images"]  # the loop's subset (1 process)
        report["throughput"]["oid_eval_rounds"] = oid["rounds"]  # fast / loop-part alternations
        report["peak_memory_gib"]["oid_eval"], report["seconds"]["oid_eval"] = mem, wall
    if "phrases" not in args.skip:
        rate, mem, wall = _part("phrase embedding", args.device, lambda: _phrase_embedding(PHRASES[mode], args.device))
        report["throughput"]["phrase_embed_per_s"] = round(rate, 2)
        report["peak_memory_gib"]["phrase_embedding"], report["seconds"]["phrase_embedding"] = mem, wall
    atomic_write_json(args.output, report, indent=2)
    print(json.dumps({"ratios": report["ratios"], "throughput": report["throughput"],
                      "peak_memory_gib": report["peak_memory_gib"]}, indent=2))
    print(f"[bench] written {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
