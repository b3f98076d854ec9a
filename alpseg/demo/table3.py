"""The embedded default: a miniature Table 3 of the paper, end to end, on CPU, over several seeds.

Every step runs a real tool as a user would (``tools/curate_alps.py``, ``tools/embed_phrases.py``,
``tools/train_net.py``, ``tools/visualize_alps.py``, ``tools/demo.py``) on the miniature world,
with configs in ``configs/demo/`` that inherit from the shipped paper configs and only shrink the
model, the images and the schedule. ``make demo`` trains the FCOS-MO rows:

* ``open_vocab``: FCOS-MO trained on COCO base-class masks only (no ALPs);
* ``fcos_mo_alp``: FCOS-MO trained on COCO masks + LocNar-OID ALPs (the paper's method);
* ``box_oracle``: FCOS-MO trained on COCO masks + the OID boxes of the same images;

and ``make demo-full`` (``--full``) adds the four Mask R-CNN* rows of the paper's Table 3.

Each seed is one whole experiment: its own miniature world (``seed``), ALPs, phrase bank and models
(``SEED``), under ``OUTPUT/seed_<s>/``. Every model is evaluated with the Open Images challenge mask
metric on that world's OID validation set (base classes = those COCO has, novel = the others); the
table reports per model the mean +- sample standard deviation over seeds and the per-seed values, and
the ALP lift (novel AP50 of ``fcos_mo_alp`` minus that of ``open_vocab``, per seed). Steps whose
outputs exist are skipped, so a killed demo continues where it stopped (finished seeds and models are
not retrained; training resumes from its last checkpoint).
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Dict, List, Optional, Sequence

from alpseg.data.miniature import CLASSES, MANIFEST, MiniatureSizes, write_miniature_world
from alpseg.utils.io import atomic_write, atomic_write_json
from alpseg.utils.run_cache import file_digest, prepare_run_folder, prune_periodic_checkpoints

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclasses.dataclass(frozen=True)
class DemoModel:
    """One row of the miniature Table 3."""

    config: str  # relative to the repository
    title: str
    paper_row: str  # the row of the paper's Table 3 this mirrors


FCOS_MODELS: Dict[str, DemoModel] = {
    "open_vocab": DemoModel("configs/demo/open_vocab.yaml", "FCOS-MO, open-vocabulary (COCO masks only)",
                            "none (the paper's open-vocabulary row is Mask R-CNN*; FCOS-MO counterpart)"),
    "fcos_mo_alp": DemoModel("configs/demo/fcos_mo_alp.yaml", "FCOS-MO + ALPs (COCO masks + LocNar-OID ALPs)",
                             "ALP-supervised: FCOS-MO"),
    "box_oracle": DemoModel("configs/demo/box_oracle.yaml", "FCOS-MO, box oracle (COCO masks + OID boxes)",
                            "box-supervised oracle: FCOS-MO"),
}
MASK_RCNN_MODELS: Dict[str, DemoModel] = {
    "mrcnn_open_vocab": DemoModel("configs/demo/mask_rcnn_star_open_vocab.yaml",
                                  "Mask R-CNN*, open-vocabulary (COCO masks only)",
                                  "open-vocabulary: Mask R-CNN* (ViLD-text style)"),
    "mrcnn_alp_noboxes": DemoModel("configs/demo/mask_rcnn_star_alp_noboxes.yaml",
                                   "Mask R-CNN* + ALPs without boxes (image-level phrases)",
                                   "ALP-supervised: Mask R-CNN* (ALPs without boxes)"),
    "mrcnn_alp": DemoModel("configs/demo/mask_rcnn_star_alp.yaml", "Mask R-CNN* + ALPs (ALP boxes)",
                           "ALP-supervised: Mask R-CNN*"),
    "mrcnn_box_oracle": DemoModel("configs/demo/mask_rcnn_star_box_oracle.yaml",
                                  "Mask R-CNN*, box oracle (COCO masks + OID boxes)",
                                  "box-supervised oracle: Mask R-CNN* (Deep-MARC style)"),
}
#: the models of ``make demo`` (name -> config), kept as the module's public mapping
MODELS: Dict[str, str] = {name: m.config for name, m in FCOS_MODELS.items()}
MODEL_TITLES: Dict[str, str] = {name: m.title for name, m in {**FCOS_MODELS, **MASK_RCNN_MODELS}.items()}
DEFAULT_SEEDS = (0, 1, 2)
#: the demo's world: >= 12 novel classes (world.py) and 150 evaluation images, so that AP50-novel is
#: not decided by a handful of detections
DEMO_SIZES = MiniatureSizes(coco_train=96, coco_val=12, oid_train=192, oid_val=150, oid_test=12, voc=False)
#: the lift that the ALP row must show over the open-vocabulary row (``lift`` in results.json)
LIFT_PAIRS = {"fcos_mo_alp": "open_vocab", "mrcnn_alp": "mrcnn_open_vocab", "mrcnn_alp_noboxes": "mrcnn_open_vocab"}
__all__ = ["run_table3", "format_table", "summarize", "environment", "MODELS", "FCOS_MODELS",
           "MASK_RCNN_MODELS", "DEFAULT_SEEDS", "DEMO_SIZES", "DemoModel", "run_tool"]


def run_tool(cmd: Sequence[str], log_path: str, env: Dict[str, str]) -> None:
    """Run one tool, its output to ``log_path``; a failure stops the demo with the log's tail."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.run(list(cmd), cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        with open(log_path, encoding="utf-8") as f:
            tail = f.read()[-4000:]
        raise RuntimeError(f"step failed ({' '.join(cmd)}); log {log_path}:\n{tail}")


#: Every miniature model is evaluated against the world's classes (18 of the 300 real OID classes,
#: scored by name): the phrase bank of a miniature run holds those names, not all 300.
MINIATURE_TEST_OPTS = ("MODEL.OPEN_VOCAB.TEST_VOCABULARY", ",".join(c.name for c in CLASSES))


def train_once(config: str, out_dir: str, opts: Sequence[str], inputs: Sequence[str], log_path: str,
               env: Dict[str, str]) -> bool:
    """``tools/train_net.py --resume`` on ``config`` + ``opts`` into ``out_dir``, unless a finished run of
    the same inputs is there; returns True when it trained.

    The run's fingerprint is the resolved config (recipe, schedule, seed; output and bank paths left
    out) plus digests of ``inputs`` (phrase bank, ALPs, world manifest). A finished run of other inputs
    is moved aside, not reused (:func:`alpseg.utils.run_cache.prepare_run_folder`).
    """
    from alpseg.config import load_config

    cfg = load_config(os.path.join(REPO, config), list(opts))
    cfg.OUTPUT_DIR, cfg.MODEL.OPEN_VOCAB.EMBEDDINGS = "", ""
    fingerprint = {"config": cfg.dump(), "inputs": {os.path.basename(p): file_digest(p) for p in inputs}}
    if prepare_run_folder(out_dir, fingerprint):
        return False
    run_tool([sys.executable, "tools/train_net.py", "--config-file", config, "--num-gpus", "0", "--resume",
              "OUTPUT_DIR", out_dir, *opts], log_path, env)
    prune_periodic_checkpoints(out_dir)  # resume points of a finished run: only disk use from here on
    return True


def _step(name: str):
    print(f"[demo] {name}", flush=True)


def environment(threads: int, parallel: int) -> Dict:
    """What decides float results: CPU model, threads per model, library versions."""
    from importlib import metadata

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {}
    for dist in ("torch", "torchvision", "numpy", "spacy", "open_clip_torch", "detectron2", "sal-detectron2"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    if "detectron2" not in versions:
        import detectron2

        versions["detectron2"] = detectron2.__version__
    return {"cpu_model": cpu, "cpu_count": os.cpu_count(), "threads_per_model": threads,
            "models_in_parallel": parallel, "python": platform.python_version(), "versions": versions}


def _mean_std(values: Sequence[float]) -> Dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def summarize(per_seed: Dict[int, Dict[str, Dict[str, float]]], seeds: Sequence[int]) -> Dict:
    """Means, standard deviations and per-seed lists over ``seeds`` (same seeds for every model).

    ``per_seed[seed][model]`` holds ``AP50_base``, ``AP50_novel`` and ``AP50``. Returns
    ``{"models": {name: {"AP50_base", "AP50_novel", "AP50", "AP50_base_std", "AP50_novel_std",
    "per_seed": {"AP50_base": [...], "AP50_novel": [...]}}}, "lift": {alp_model: {...}}}``.
    """
    names = list(per_seed[seeds[0]])
    models = {}
    for name in names:
        lists = {k: [per_seed[s][name][k] for s in seeds] for k in ("AP50_base", "AP50_novel", "AP50")}
        models[name] = {"AP50_base": _mean_std(lists["AP50_base"])["mean"],
                        "AP50_novel": _mean_std(lists["AP50_novel"])["mean"],
                        "AP50": _mean_std(lists["AP50"])["mean"],
                        "AP50_base_std": _mean_std(lists["AP50_base"])["std"],
                        "AP50_novel_std": _mean_std(lists["AP50_novel"])["std"],
                        "per_seed": {"AP50_base": lists["AP50_base"], "AP50_novel": lists["AP50_novel"]}}
    lift = {}
    for alp, base in LIFT_PAIRS.items():
        if alp in models and base in models:
            values = [a - b for a, b in zip(models[alp]["per_seed"]["AP50_novel"], models[base]["per_seed"]["AP50_novel"])]
            lift[alp] = {"over": base, "per_seed": values, **_mean_std(values)}
    return {"models": models, "lift": lift}


def _prepare_seed(output: str, seed: int, sizes: MiniatureSizes, env: Dict[str, str]) -> Dict:
    """World, curated ALPs and phrase bank of one seed (each skipped when already there)."""
    py = sys.executable
    data_root = os.path.join(output, "datasets")
    write_miniature_world(data_root, seed=seed, sizes=sizes)
    alps = os.path.join(data_root, "alps", "locnar_oid_train_alps.json")
    if not os.path.isfile(alps):
        run_tool([py, "tools/curate_alps.py",
              "--input", os.path.join(data_root, "localized_narratives",
                                      "open_images_train_v6_localized_narratives.jsonl"),
              "--image-info", os.path.join(data_root, "openimages", "annotations", "locnar_oid_train_image_info.json"),
              "--output", alps, "--no-progress"], os.path.join(output, "logs", "curate_alps.log"), env)
    with open(alps, encoding="utf-8") as f:
        curated = json.load(f)
    bank = os.path.join(output, "phrase_bank.npz")
    phrases = sorted(set(curated["phrases"]) | {c.name for c in CLASSES})
    phrase_file = os.path.join(output, "phrases.txt")
    atomic_write(phrase_file, "\n".join(phrases) + "\n")
    run_tool([py, "tools/embed_phrases.py", "--phrases", phrase_file, "--output", bank, "--pretrained", "none",
          "--prompts", "single"], os.path.join(output, "logs", "embed_phrases.log"), env)
    return curated["report"]


def run_table3(output: str, seed: Optional[int] = None, parallel: int = 3, iterations: int = 0, *,
               seeds: Optional[Sequence[int]] = None, full: bool = False, threads: int = 1,
               sizes: Optional[MiniatureSizes] = None, models: Optional[Sequence[str]] = None,
               extra_opts: Sequence[str] = (), pictures: bool = True, progress: bool = True) -> Dict:
    """Run the whole miniature pipeline for every seed; returns the summary written to results.json.

    Args:
        seed: one seed (the old single-seed call); ``seeds`` wins when both are given.
        seeds: seeds to run (default :data:`DEFAULT_SEEDS`).
        parallel: models trained at the same time; ``threads``: CPU threads of each.
        iterations: override of ``SOLVER.MAX_ITER`` (0 keeps the configs').
        full: also the Mask R-CNN* rows. ``models``: explicit subset of model names instead.
        sizes: the miniature world's sizes (default :data:`DEMO_SIZES`).
        extra_opts: config overrides appended to every model's (e.g. a smaller input size for a
            reduced-size run); part of each run's fingerprint like the rest of the config.
    """
    seeds = list(seeds) if seeds is not None else ([seed] if seed is not None else list(DEFAULT_SEEDS))
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one, got {seeds}")
    catalog = {**FCOS_MODELS, **MASK_RCNN_MODELS}
    names = list(models) if models else list(FCOS_MODELS) + (list(MASK_RCNN_MODELS) if full else [])
    unknown = [n for n in names if n not in catalog]
    if unknown:
        raise ValueError(f"unknown demo models {unknown}; known: {sorted(catalog)}")
    sizes = sizes or DEMO_SIZES
    output = os.path.abspath(output)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    t0 = time.time()
    per_seed: Dict[int, Dict[str, Dict[str, float]]] = {}
    curation: Dict[int, Dict] = {}
    for k, s in enumerate(seeds):
        seed_dir = os.path.join(output, f"seed_{s}")
        seed_env = dict(env, DETECTRON2_DATASETS=os.path.join(seed_dir, "datasets"))
        _step(f"seed {s} ({k + 1}/{len(seeds)}): world, ALP curation (spaCy), phrase bank (open_clip ViT-B-32 "
              "with random weights, chosen on purpose: no download here; one prompt)")
        curation[s] = _prepare_seed(seed_dir, s, sizes, seed_env)
        bank = os.path.join(seed_dir, "phrase_bank.npz")

        inputs = [bank, os.path.join(seed_dir, "datasets", MANIFEST),
                  os.path.join(seed_dir, "datasets", "alps", "locnar_oid_train_alps.json")]

        def train(name: str, seed_dir=seed_dir, seed_env=seed_env, bank=bank, s=s, inputs=inputs) -> None:
            opts = ["MODEL.OPEN_VOCAB.EMBEDDINGS", bank, "SEED", str(s), *MINIATURE_TEST_OPTS]
            if iterations:
                opts += ["SOLVER.MAX_ITER", str(iterations)]
            opts += list(extra_opts)
            if train_once(catalog[name].config, os.path.join(seed_dir, name), opts, inputs,
                          os.path.join(seed_dir, "logs", f"train_{name}.log"), seed_env):
                print(f"[demo]   seed {s}: {name} done ({time.time() - t0:.0f} s since start)", flush=True)

        _step(f"seed {s}: train {len(names)} models ({', '.join(names)}), {parallel} at a time, {threads} thread(s) each")
        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            jobs = [pool.submit(train, name) for name in names]
            if progress:
                _show_training_progress(seed_dir, {n: catalog[n].config for n in names}, iterations, jobs)
            for job in jobs:
                job.result()
        per_seed[s] = {}
        for name in names:
            with open(os.path.join(seed_dir, name, "results.json"), encoding="utf-8") as f:
                metrics = json.load(f)["oid_challenge"]
            per_seed[s][name] = {"AP50_base": metrics["AP50-base"], "AP50_novel": metrics["AP50-novel"],
                                 "AP50": metrics["AP50"]}

    _step("collect the results")
    results: Dict = summarize(per_seed, seeds)
    results.update({"seeds": seeds, "iterations": iterations or "configs", "sizes": dataclasses.asdict(sizes),
                    "alp_curation": {str(s): curation[s] for s in seeds},
                    "environment": environment(threads, parallel),
                    "minutes": round((time.time() - t0) / 60, 1)})
    for name in names:
        results["models"][name]["paper_row"] = catalog[name].paper_row
    atomic_write_json(os.path.join(output, "results.json"), results, indent=2)
    table = format_table(results)
    atomic_write(os.path.join(output, "results.md"), table + "\n")
    _link_reference_seed(output, seeds[0], ["datasets", "phrase_bank.npz", *names])
    if pictures:
        _step("pictures: curated ALPs and predictions on novel objects (first seed)")
        first = os.path.join(output, f"seed_{seeds[0]}")
        _pictures(first, os.path.join(first, "datasets"), os.path.join(first, "phrase_bank.npz"),
                  dict(env, DETECTRON2_DATASETS=os.path.join(first, "datasets")))
    print(table, flush=True)
    print(f"[demo] finished in {results['minutes']} min; results in {output}/results.json", flush=True)
    return results


def _link_reference_seed(output: str, seed: int, entries: Sequence[str]) -> None:
    """``OUTPUT/<entry>`` -> ``seed_<seed>/<entry>``: the single-seed layout (``output/demo/fcos_mo_alp``,
    ``output/demo/datasets``, ...) that tools/demo.py examples and tools/app.py ``--demo-dir`` read."""
    for entry in entries:
        link, target = os.path.join(output, entry), os.path.join(f"seed_{seed}", entry)
        if os.path.islink(link):
            if os.readlink(link) == target:
                continue
            os.remove(link)
        elif os.path.exists(link):
            print(f"[demo] note: {link} is left from an older, single-seed demo and was not replaced by a link "
                  f"to {target}; delete it to get the link", flush=True)
            continue
        os.symlink(target, link)


def _last_iteration(metrics_json: str) -> int:
    """The last iteration logged in a detectron2 ``metrics.json`` (-1 before the first)."""
    last = -1
    if os.path.isfile(metrics_json):
        with open(metrics_json, encoding="utf-8") as f:
            for line in f:
                try:
                    last = max(last, int(json.loads(line).get("iteration", -1)))
                except ValueError:  # a line being written right now
                    pass
    return last


def _show_training_progress(output: str, configs: Dict[str, str], iterations: int, jobs) -> None:
    """A progress bar over the iterations of all models, read from their metrics.json files."""
    from tqdm import tqdm

    from alpseg.config import load_config

    total = {n: iterations or load_config(os.path.join(REPO, cfg)).SOLVER.MAX_ITER for n, cfg in configs.items()}
    with tqdm(total=sum(total.values()), desc="[demo] training", unit="it") as bar:
        while wait(jobs, timeout=5).not_done:
            done = sum(min(total[n], _last_iteration(os.path.join(output, n, "metrics.json")) + 1) for n in configs)
            bar.update(done - bar.n)
        bar.update(bar.total - bar.n)


def _pm(mean: float, std: float) -> str:
    return f"{mean:.1f} ± {std:.1f}"


def format_table(results: Dict) -> str:
    """The miniature Table 3: mean ± std over seeds, per-seed novel AP50, the paper row mirrored, the lift."""
    seeds = results.get("seeds", [])
    rows = [f"| model | paper Table 3 row | AP50 base | AP50 novel | AP50 novel per seed ({', '.join(map(str, seeds))}) |",
            "|---|---|---:|---:|---|"]
    for name, m in results["models"].items():
        per = ", ".join(f"{v:.1f}" for v in m.get("per_seed", {}).get("AP50_novel", []))
        rows.append(f"| {MODEL_TITLES.get(name, name)} | {m.get('paper_row', '')} | "
                    f"{_pm(m['AP50_base'], m.get('AP50_base_std', 0.0))} | "
                    f"{_pm(m['AP50_novel'], m.get('AP50_novel_std', 0.0))} | {per} |")
    for alp, lift in results.get("lift", {}).items():
        per = ", ".join(f"{v:+.1f}" for v in lift["per_seed"])
        rows.append(f"\nALP lift ({alp} - {lift['over']}, novel AP50): {lift['mean']:+.1f} ± {lift['std']:.1f} "
                    f"over {len(lift['per_seed'])} seeds (per seed: {per})")
    return "\n".join(rows)


def _pictures(output: str, data_root: str, bank: str, env: Dict[str, str]) -> None:
    """ALPs drawn on two training images; the ALP model's predictions on validation images with
    novel objects, with the full miniature vocabulary."""
    py = sys.executable
    alps = os.path.join(data_root, "alps", "locnar_oid_train_alps.json")
    run_tool([py, "tools/visualize_alps.py", "--alps", alps, "--image-root", os.path.join(data_root, "openimages", "train"),
          "--output", os.path.join(output, "alps_pictures"), "--num", "4", "--scale", "4"],
         os.path.join(output, "logs", "visualize_alps.log"), env)
    val_images = _images_with_novel_objects(data_root, limit=4)
    model_dir = os.path.join(output, "fcos_mo_alp")
    run_tool([py, "tools/demo.py", "--config-file", os.path.join(model_dir, "config.yaml"),
          "--weights", os.path.join(model_dir, "model_final.pth"), "--input", *val_images,
          "--vocabulary", ",".join(c.name for c in CLASSES), "--output", os.path.join(output, "predictions"),
          "MODEL.OPEN_VOCAB.EMBEDDINGS", bank], os.path.join(output, "logs", "predictions.log"), env)


def _images_with_novel_objects(data_root: str, limit: int) -> List[str]:
    import csv

    novel = {c.oid_mid for c in CLASSES if c.coco_id is None}
    seg = os.path.join(data_root, "openimages", "segmentation", "validation-segmentation-masks.csv")
    with open(seg, encoding="utf-8") as f:
        ids = []
        for row in csv.DictReader(f):
            if row["LabelName"] in novel and row["ImageID"] not in ids:
                ids.append(row["ImageID"])
    return [os.path.join(data_root, "openimages", "validation", f"{i}.jpg") for i in ids[:limit]]
