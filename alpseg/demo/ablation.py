"""Miniature ablations: each documented judgement trained both ways, several seeds, mean +- std.

Every run is the real pipeline of the demo (:mod:`alpseg.demo.table3`): the miniature world, ALPs
curated by ``tools/curate_alps.py``, a bank from ``tools/embed_phrases.py``, then
``tools/train_net.py`` on a ``configs/demo/`` config with the variant's ``KEY VALUE`` overrides and
``SEED``; the metric is read from the run's ``results.json``. A run whose ``results.json`` exists is
not repeated (runs shared by two ablations, such as a default variant, are trained once), so a
killed ablation continues where it stopped.
"""
from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence, Tuple

from alpseg.data.miniature import CLASSES, MANIFEST, MiniatureSizes, write_miniature_world
from alpseg.demo.table3 import MINIATURE_TEST_OPTS, run_tool, train_once

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

__all__ = ["ABLATIONS", "Ablation", "format_ablation_table", "run_ablations", "summarize"]


@dataclasses.dataclass(frozen=True)
class Ablation:
    """One judgement: a demo config and its variants (name -> overrides); the first is the shipped default."""

    title: str
    config: str
    variants: Tuple[Tuple[str, Tuple[str, ...]], ...]
    doc: str  # where the judgement is documented


_FCOS_ALP = "configs/demo/fcos_mo_alp.yaml"
_MRCNN_ALP = "configs/demo/mask_rcnn_star_alp.yaml"
ABLATIONS: Dict[str, Ablation] = {
    "fcos_fg_bias": Ablation(
        "FCOS-MO classifier: fixed zero background (paper) vs a learnable foreground bias", _FCOS_ALP,
        (("zero background, no bias (paper, default)", ()),
         ("learnable fg bias, prior 0.01", ("MODEL.FCOS_MO.LEARNABLE_FG_BIAS", "True"))),
        "docs/fcos_mo.md"),
    "fcos_alp_normalizers": Ablation(
        "FCOS-MO loss normalizers when COCO and ALP batches alternate", _FCOS_ALP,
        (("one EMA per batch kind (default)", ()),
         ("one EMA shared by all batches", ("MODEL.FCOS_MO.ALP_NORMALIZERS", "False"))),
        "docs/fcos_mo.md"),
    "fcos_hourglass_width": Ablation(
        "Hourglass-20 mask head width (the paper gives none; 128 at full size, 32 in the demo)", _FCOS_ALP,
        (("demo width 32 (default)", ()), ("width 64", ("MODEL.ROI_MASK_HEAD.HOURGLASS_WIDTH", "64"))),
        "docs/fcos_mo.md"),
    "coco_merge": Ablation(
        "COCO setups: masks and LocNar-COCO ALPs of the same images, alternated or merged per image",
        "configs/demo/fcos_mo_coco_vocmasks.yaml",
        (("alternating batches (default)", ()),
         ("merged per image", ("DATASETS.TRAIN", "('coco_2017_train_vocmasks_merged_alps',)",
                               "DATALOADER.ALTERNATE_DATASETS", "False"))),
        "docs/fcos_mo.md"),
    "mrcnn_bg_alpha": Ablation(
        "Mask R-CNN* background weight of the RoI classifier", _MRCNN_ALP,
        (("alpha 0.1 (FCOS-MO's, default)", ()), ("alpha 1.0 (plain cross-entropy)", ("MODEL.OPEN_VOCAB.BG_ALPHA", "1.0"))),
        "docs/mask_rcnn_star.md"),
    "mrcnn_image_label_background": Ablation(
        "Mask R-CNN* image-label loss (ALPs without boxes): phrases of the batch only, or with background",
        "configs/demo/mask_rcnn_star_alp_noboxes.yaml",
        (("phrases only (default)", ()),
         ("phrases + background logit", ("MODEL.MASK_RCNN_STAR.IMAGE_LABEL_BACKGROUND", "True"))),
        "docs/mask_rcnn_star.md"),
    "mrcnn_box_quantization": Ablation(
        "Mask R-CNN* box quantization of ALP boxes", _MRCNN_ALP,
        (("none (default)", ()), ("Q in {0, 8, 16, 32} (FCOS-MO's)", ("INPUT.ALP.BOX_QUANTIZATION", "[0, 8, 16, 32]"))),
        "docs/mask_rcnn_star.md"),
    "mrcnn_box_head_norm": Ablation(
        "Mask R-CNN* box head", _MRCNN_ALP,
        (("4 conv + 1 fc, synchronized BN (paper, default)", ()),
         ("2 fc, no norm (detectron2's standard)", ("MODEL.ROI_BOX_HEAD.NUM_CONV", "0", "MODEL.ROI_BOX_HEAD.NUM_FC", "2",
                                                   "MODEL.ROI_BOX_HEAD.NORM", ""))),
        "docs/mask_rcnn_star.md"),
}


def prepare(output: str, env: Dict[str, str], world_seed: int = 0, sizes: Optional[MiniatureSizes] = None) -> str:
    """World, curated LocNar-OID and LocNar-COCO ALPs, and one phrase bank; returns the bank's path."""
    data_root = env["DETECTRON2_DATASETS"]
    write_miniature_world(data_root, seed=world_seed, sizes=sizes or MiniatureSizes(voc=False))
    py = sys.executable
    curated = {}
    for name, narratives, info in (
        ("locnar_oid_train_alps", "open_images_train_v6_localized_narratives.jsonl",
         "openimages/annotations/locnar_oid_train_image_info.json"),
        ("locnar_coco_train_alps", "coco_train_localized_narratives.jsonl", "coco/annotations/instances_train2017.json"),
    ):
        path = os.path.join(data_root, "alps", f"{name}.json")
        if not os.path.isfile(path):
            run_tool([py, "tools/curate_alps.py", "--input", os.path.join(data_root, "localized_narratives", narratives),
                       "--image-info", os.path.join(data_root, info), "--output", path, "--no-progress"],
                      os.path.join(output, "logs", f"curate_{name}.log"), env)
        with open(path, encoding="utf-8") as f:
            curated[name] = json.load(f)["phrases"]
    from alpseg.data.datasets.class_lists import coco_thing_classes
    from alpseg.text.prompts import normalize_phrase

    phrases = set().union(*curated.values()) | {c.name for c in CLASSES}
    phrases |= {normalize_phrase(n) for _, n in coco_thing_classes()}  # the COCO test vocabulary
    phrase_file = os.path.join(output, "phrases.txt")
    with open(phrase_file, "w", encoding="utf-8") as f:
        f.write("\n".join(sorted(phrases)) + "\n")
    bank = os.path.join(output, "phrase_bank.npz")
    run_tool([py, "tools/embed_phrases.py", "--phrases", phrase_file, "--output", bank, "--pretrained", "none",
               "--prompts", "single"], os.path.join(output, "logs", "embed_phrases.log"), env)
    return bank


def _run_dir(output: str, config: str, overrides: Sequence[str], seed: int, iterations: int) -> str:
    # a readable, collision-free name; whether the run in it may be reused is decided by its fingerprint
    key = json.dumps([config, list(overrides), seed, iterations])
    stem = os.path.splitext(os.path.basename(config))[0]
    return os.path.join(output, "runs", f"{stem}-s{seed}-{hashlib.sha1(key.encode()).hexdigest()[:10]}")


def read_metrics(results_json: str) -> Dict[str, float]:
    """AP50 base / novel of a run: the OID challenge metric, or COCO base/novel mask AP50."""
    with open(results_json, encoding="utf-8") as f:
        results = json.load(f)
    metrics = results["oid_challenge"] if "oid_challenge" in results else results["segm"]
    return {"AP50_base": float(metrics["AP50-base"]), "AP50_novel": float(metrics["AP50-novel"])}


def _train(output: str, bank: str, config: str, overrides: Sequence[str], seed: int, iterations: int,
           env: Dict[str, str]) -> Dict[str, float]:
    out_dir = _run_dir(output, config, overrides, seed, iterations)
    opts = ["MODEL.OPEN_VOCAB.EMBEDDINGS", bank, "SEED", str(seed),
            "SOLVER.MAX_ITER", str(iterations), "SOLVER.CHECKPOINT_PERIOD", str(iterations),
            "SOLVER.WARMUP_ITERS", str(max(1, iterations // 8)), *MINIATURE_TEST_OPTS] + list(overrides)
    data_root = env["DETECTRON2_DATASETS"]
    inputs = [bank, os.path.join(data_root, MANIFEST)] + sorted(glob.glob(os.path.join(data_root, "alps", "*.json")))
    train_once(config, out_dir, opts, inputs, os.path.join(out_dir, "train.log"), env)
    return read_metrics(os.path.join(out_dir, "results.json"))


def summarize(values: Sequence[float]) -> Tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value); NaNs are an error."""
    if not values or any(math.isnan(v) for v in values):
        raise ValueError(f"cannot summarize {list(values)}")
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def format_ablation_table(results: Dict[str, Dict]) -> str:
    """Markdown: one row per (ablation, variant), mean +- std of AP50 base / novel over the seeds."""
    from alpseg.utils.markdown import markdown_table

    rows = []
    for name, ablation in results.items():
        for variant, runs in ablation["variants"].items():
            cells = []
            for key in ("AP50_base", "AP50_novel"):
                mean, std = summarize([r[key] for r in runs])
                cells.append(f"{mean:.1f} +- {std:.1f}")
            rows.append([ablation["title"], variant, len(runs), *cells])
    return markdown_table(["judgement", "variant", "seeds", "AP50 base", "AP50 novel"], rows,
                          align=["left", "left", "right", "right", "right"]).rstrip("\n")


def run_ablations(output: str, names: Sequence[str], seeds: Sequence[int], iterations: int, parallel: int = 2,
                  progress: bool = True, world_seed: int = 0, sizes: Optional[MiniatureSizes] = None) -> Dict[str, Dict]:
    """Train every variant of each ablation in ``names`` once per seed; returns and writes the results.

    ``sizes``: the miniature world's (default: ``MiniatureSizes(voc=False)``, the measured tables')."""
    unknown = [n for n in names if n not in ABLATIONS]
    if unknown:
        raise KeyError(f"unknown ablations {unknown}; choose from {sorted(ABLATIONS)}")
    if not seeds or iterations < 1:
        raise ValueError("need at least one seed and one iteration")
    output = os.path.abspath(output)
    env = dict(os.environ, DETECTRON2_DATASETS=os.path.join(output, "datasets"), OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1")
    t0 = time.time()
    bank = prepare(output, env, world_seed, sizes)
    jobs: List[Tuple[str, Tuple[str, ...], int]] = []
    for name in names:
        for _, overrides in ABLATIONS[name].variants:
            for seed in seeds:
                if (ABLATIONS[name].config, overrides, seed) not in jobs:
                    jobs.append((ABLATIONS[name].config, overrides, seed))
    from tqdm import tqdm

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = {job: pool.submit(_train, output, bank, job[0], job[1], job[2], iterations, env) for job in jobs}
        with tqdm(total=len(futures), desc="[ablate] runs", unit="run", disable=not progress) as bar:
            for future in futures.values():
                future.result()
                bar.update(1)
    results: Dict[str, Dict] = {}
    for name in names:
        ablation = ABLATIONS[name]
        results[name] = {"title": ablation.title, "config": ablation.config, "doc": ablation.doc,
                         "iterations": iterations, "variants": {}}
        for variant, overrides in ablation.variants:
            results[name]["variants"][variant] = [
                dict(futures[(ablation.config, overrides, s)].result(), seed=s) for s in seeds]
    from alpseg.utils.io import atomic_write, atomic_write_json

    atomic_write_json(os.path.join(output, "ablations.json"), {"ablations": results, "seeds": list(seeds),
                                                                "minutes": round((time.time() - t0) / 60, 1)},
                      indent=2)
    atomic_write(os.path.join(output, "ablations.md"), format_ablation_table(results) + "\n")
    return results
