"""The embedded default: a miniature Table 3 of the paper, end to end, on CPU.

Every step runs a real tool as a user would (``tools/curate_alps.py``, ``tools/embed_phrases.py``,
``tools/train_net.py``, ``tools/visualize_alps.py``, ``tools/demo.py``) on the miniature world,
with configs in ``configs/demo/`` that inherit from the shipped paper configs and only shrink the
model, the images and the schedule. Three models share that recipe:

* ``open_vocab``: FCOS-MO trained on COCO base-class masks only (no ALPs);
* ``fcos_mo_alp``: FCOS-MO trained on COCO masks + LocNar-OID ALPs (the paper's method);
* ``box_oracle``: FCOS-MO trained on COCO masks + the OID boxes of the same images.

Each is evaluated with the Open Images challenge mask metric on the miniature OID validation set
(base classes = those COCO has, novel = the others). Steps whose outputs exist are skipped, so a
killed demo continues where it stopped (training resumes from its last checkpoint).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Dict, List, Sequence

from alpseg.data.miniature import CLASSES, MiniatureSizes, write_miniature_world

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = {
    "open_vocab": "configs/demo/open_vocab.yaml",
    "fcos_mo_alp": "configs/demo/fcos_mo_alp.yaml",
    "box_oracle": "configs/demo/box_oracle.yaml",
}
MODEL_TITLES = {
    "open_vocab": "Open-vocabulary baseline (COCO base masks only)",
    "fcos_mo_alp": "FCOS-MO + ALPs (COCO masks + LocNar-OID ALPs)",
    "box_oracle": "Box-supervised oracle (COCO masks + OID boxes)",
}
__all__ = ["run_table3", "format_table", "MODELS"]


def _run(cmd: Sequence[str], log_path: str, env: Dict[str, str]) -> None:
    """Run one tool, its output to ``log_path``; a failure stops the demo with the log's tail."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.run(list(cmd), cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        with open(log_path, encoding="utf-8") as f:
            tail = f.read()[-4000:]
        raise RuntimeError(f"step failed ({' '.join(cmd)}); log {log_path}:\n{tail}")


def _step(name: str):
    print(f"[demo] {name}", flush=True)


def run_table3(output: str, seed: int = 0, parallel: int = 3, iterations: int = 0) -> Dict:
    """Run the whole miniature pipeline; returns ``{"models": {name: {"AP50_base", "AP50_novel", ...}}}``."""
    output = os.path.abspath(output)
    data_root = os.path.join(output, "datasets")
    env = dict(os.environ, DETECTRON2_DATASETS=data_root, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    py = sys.executable
    t0 = time.time()

    _step("1/6 generate the miniature world")
    write_miniature_world(data_root, seed=seed, sizes=MiniatureSizes(voc=False))

    _step("2/6 curate ALPs from the LocNar-OID narratives (spaCy)")
    alps = os.path.join(data_root, "alps", "locnar_oid_train_alps.json")
    if not os.path.isfile(alps):
        _run([py, "tools/curate_alps.py",
              "--input", os.path.join(data_root, "localized_narratives",
                                      "open_images_train_v6_localized_narratives.jsonl"),
              "--image-info", os.path.join(data_root, "openimages", "annotations", "locnar_oid_train_image_info.json"),
              "--output", alps], os.path.join(output, "logs", "curate_alps.log"), env)
    with open(alps, encoding="utf-8") as f:
        curated = json.load(f)
    report = curated["report"]

    _step("3/6 embed phrases (open_clip ViT-B-32, random weights chosen on purpose: no download here; one prompt)")
    bank = os.path.join(output, "phrase_bank.npz")
    phrase_file = os.path.join(output, "phrases.txt")
    phrases = sorted(set(curated["phrases"]) | {c.name for c in CLASSES})
    with open(phrase_file, "w", encoding="utf-8") as f:
        f.write("\n".join(phrases) + "\n")
    _run([py, "tools/embed_phrases.py", "--phrases", phrase_file, "--output", bank, "--pretrained", "none",
          "--prompts", "single"],
         os.path.join(output, "logs", "embed_phrases.log"), env)

    _step(f"4/6 train {len(MODELS)} models ({', '.join(MODELS)}), {parallel} at a time")
    def train(name: str) -> None:
        out_dir = os.path.join(output, name)
        if os.path.isfile(os.path.join(out_dir, "results.json")):
            return
        # evaluated against the miniature classes (10 of the 300 real OID classes), scored by name
        opts = ["OUTPUT_DIR", out_dir, "MODEL.OPEN_VOCAB.EMBEDDINGS", bank, "SEED", str(seed),
                "MODEL.OPEN_VOCAB.TEST_VOCABULARY", ",".join(c.name for c in CLASSES)]
        if iterations:
            opts += ["SOLVER.MAX_ITER", str(iterations)]
        _run([py, "tools/train_net.py", "--config-file", MODELS[name], "--num-gpus", "0", "--resume"] + opts,
             os.path.join(output, "logs", f"train_{name}.log"), env)
        print(f"[demo]   {name} done ({time.time() - t0:.0f} s since start)", flush=True)

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        jobs = [pool.submit(train, name) for name in MODELS]
        _show_training_progress(output, iterations, jobs)
        for job in jobs:
            job.result()

    _step("5/6 collect the results")
    results: Dict = {"models": {}, "alp_curation": report, "seed": seed}
    for name in MODELS:
        with open(os.path.join(output, name, "results.json"), encoding="utf-8") as f:
            metrics = json.load(f)["oid_challenge"]
        results["models"][name] = {"AP50_base": metrics["AP50-base"], "AP50_novel": metrics["AP50-novel"],
                                   "AP50": metrics["AP50"]}
    results["minutes"] = round((time.time() - t0) / 60, 1)
    with open(os.path.join(output, "results.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    table = format_table(results)
    with open(os.path.join(output, "results.md"), "w", encoding="utf-8") as f:
        f.write(table + "\n")

    _step("6/6 pictures: curated ALPs and predictions on novel objects")
    _pictures(output, data_root, bank, env)
    print(table, flush=True)
    print(f"[demo] finished in {results['minutes']} min; results in {output}/results.json", flush=True)
    return results


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


def _show_training_progress(output: str, iterations: int, jobs) -> None:
    """A progress bar over the iterations of all models, read from their metrics.json files."""
    from tqdm import tqdm

    from alpseg.config import load_config

    total = {name: iterations or load_config(os.path.join(REPO, cfg)).SOLVER.MAX_ITER for name, cfg in MODELS.items()}
    with tqdm(total=sum(total.values()), desc="[demo] training", unit="it") as bar:
        while wait(jobs, timeout=5).not_done:
            done = sum(min(total[n], _last_iteration(os.path.join(output, n, "metrics.json")) + 1) for n in MODELS)
            bar.update(done - bar.n)
        bar.update(bar.total - bar.n)


def format_table(results: Dict) -> str:
    rows = ["| model | AP50 base | AP50 novel |", "|---|---:|---:|"]
    for name, m in results["models"].items():
        rows.append(f"| {MODEL_TITLES.get(name, name)} | {m['AP50_base']:.1f} | {m['AP50_novel']:.1f} |")
    return "\n".join(rows)


def _pictures(output: str, data_root: str, bank: str, env: Dict[str, str]) -> None:
    """ALPs drawn on two training images; the ALP model's predictions on validation images with
    novel objects, with the full miniature vocabulary."""
    py = sys.executable
    alps = os.path.join(data_root, "alps", "locnar_oid_train_alps.json")
    _run([py, "tools/visualize_alps.py", "--alps", alps, "--image-root", os.path.join(data_root, "openimages", "train"),
          "--output", os.path.join(output, "alps_pictures"), "--num", "4", "--scale", "4"],
         os.path.join(output, "logs", "visualize_alps.log"), env)
    val_images = _images_with_novel_objects(data_root, limit=4)
    model_dir = os.path.join(output, "fcos_mo_alp")
    _run([py, "tools/demo.py", "--config-file", os.path.join(model_dir, "config.yaml"),
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
