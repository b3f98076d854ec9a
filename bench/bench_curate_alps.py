#!/usr/bin/env python
"""Throughput of ALP curation: narratives per second with 1, 2, ... spaCy worker processes.

Synthetic narratives with the size of real LocNar-OID records (about 36 words per caption, one
utterance per word, a mouse point every 40 ms over the whole narration) are written to a JSONL file
and curated twice per worker count:

* ``tagging``: ``nlp.pipe(captions, n_process=K)`` over the captions alone (spaCy's own
  multiprocessing; the main process receives every Doc);
* ``end-to-end``: :class:`alpseg.data.alp_curation_run.CurationJob` with ``workers=K`` (read +
  validate + tag + align + boxes + checkpoints + ALPS.json, chunks curated whole in K processes),
  i.e. ``tools/curate_alps.py --workers K``.

It prints a table and the estimated time of a full LocNar-OID run (504K narratives), and writes the
figures as JSON. Runs where only numpy, tqdm and spaCy are installed: when detectron2 cannot be
imported, the alpseg package ``__init__`` (which registers models) is bypassed.

  python bench/bench_curate_alps.py --narratives 2000 --workers 1 2 --output bench_curate.json
"""
import argparse
import importlib
import json
import os
import sys
import tempfile
import time
import types

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCNAR_OID = 504_000

OBJECTS = ["dog", "person", "car", "tree", "bottle", "chair", "table", "bicycle", "cup", "lamp", "woman", "man",
           "building", "flower pot", "laptop", "traffic light", "boat", "horse", "umbrella", "book", "shirt",
           "phone", "window", "door", "bag", "plate", "banana", "clock", "bench", "kite"]
ADJECTIVES = ["small", "big", "white", "black", "red", "blue", "wooden", "old", "green", "yellow", "tall"]
STUFF = ["sky", "grass", "wall", "road", "water", "floor", "sand", "clouds"]
OPENERS = ["In this image we can see", "This picture is taken outside and we can see", "Here I can see",
           "In the front of the image there is"]
LINKS = ["and", "on the left side there is", "beside that there is", "we can also see", "near to that there are"]


def _import_curation():
    try:
        import detectron2  # noqa: F401
    except ImportError:  # curation needs no detectron2: skip the package __init__ that registers models
        for name in ("alpseg", "alpseg.data"):
            pkg = types.ModuleType(name)
            pkg.__path__ = [os.path.join(ROOT, *name.split("."))]
            sys.modules[name] = pkg
    sys.path.insert(0, ROOT)
    return (importlib.import_module("alpseg.data.alp_curation"),
            importlib.import_module("alpseg.data.alp_curation_run"))


def _phrase(rng):
    words = []
    if rng.random() < 0.5:
        words.append(ADJECTIVES[rng.integers(len(ADJECTIVES))])
    words += OBJECTS[rng.integers(len(OBJECTS))].split()
    return ["a"] + words


def make_narrative(rng, k: int, words_target: int = 36):
    """A LocNar-like record of about ``words_target`` words with per-word timings and a dense trace."""
    words = OPENERS[rng.integers(len(OPENERS))].split()
    while len(words) < words_target:
        words += LINKS[rng.integers(len(LINKS))].split() + _phrase(rng)
        if rng.random() < 0.3:
            words += ["in", "front", "of", "the", STUFF[rng.integers(len(STUFF))]]
        if rng.random() < 0.3:
            words[-1] += "."
    words[-1] = words[-1].rstrip(".") + "."
    timed, t = [], 0.5
    for w in words:
        d = float(rng.uniform(0.2, 0.5))
        timed.append({"utterance": w, "start_time": round(t, 3), "end_time": round(t + d, 3)})
        t += d + float(rng.uniform(0.0, 0.1))
    times = np.arange(0.0, t + 0.5, 0.04)
    xy = np.clip(np.cumsum(rng.normal(0, 0.02, (len(times), 2)), axis=0) + 0.5, -0.1, 1.1)
    trace = [{"x": round(float(x), 4), "y": round(float(y), 4), "t": round(float(tt), 3)}
             for (x, y), tt in zip(xy, times)]
    return {"dataset_id": "bench", "image_id": f"img{k}", "annotator_id": int(k % 50),
            "caption": " ".join(words), "timed_caption": timed, "traces": [trace],
            "voice_recording": f"bench/{k}.ogg"}


def write_inputs(folder: str, n: int, seed: int):
    rng = np.random.default_rng(seed)
    path = os.path.join(folder, "narratives.jsonl")
    captions, words = [], 0
    with open(path, "w", encoding="utf-8") as f:
        for k in range(n):
            rec = make_narrative(rng, k)
            captions.append(rec["caption"])
            words += len(rec["caption"].split())
            f.write(json.dumps(rec) + "\n")
    info = os.path.join(folder, "info.json")
    with open(info, "w", encoding="utf-8") as f:
        json.dump({"images": [{"id": f"img{k}", "file_name": f"{k}.jpg", "width": 1024, "height": 768}
                              for k in range(n)]}, f)
    return path, info, captions, words / n


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--narratives", type=int, default=2000)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--spacy-model", default="auto")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--chunk-size", type=int, default=250, help="narratives per chunk (the unit of parallel work)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default=None, help="write the figures here (JSON)")
    args = p.parse_args()
    curation, run_mod = _import_curation()
    nlp = curation.load_spacy_pipeline(args.spacy_model)
    model = curation.spacy_model_id(nlp)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path, info, captions, mean_words = write_inputs(tmp, args.narratives, args.seed)
        mb = os.path.getsize(path) / 2 ** 20
        print(f"{args.narratives} synthetic narratives, {mean_words:.1f} words/caption, {mb:.1f} MiB JSONL; "
              f"spaCy {model}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}")
        for k in args.workers:
            t0 = time.perf_counter()
            n_docs = sum(1 for _ in nlp.pipe(captions, n_process=k, batch_size=args.batch_size))
            tag_rate = n_docs / (time.perf_counter() - t0)
            job = run_mod.CurationJob(inputs=[path], image_info=info, output=os.path.join(tmp, f"alps{k}.json"),
                                      spacy_model=args.spacy_model, workers=k, batch_size=args.batch_size,
                                      chunk_size=args.chunk_size, progress=False)
            t0 = time.perf_counter()
            report = job.run()
            e2e_rate = report["narratives_curated"] / (time.perf_counter() - t0)
            rows.append({"workers": k, "tagging_per_s": round(tag_rate, 1), "end_to_end_per_s": round(e2e_rate, 1),
                         "alps": report["alps"], "locnar_oid_hours": round(LOCNAR_OID / e2e_rate / 3600, 2)})
    base = rows[0]["end_to_end_per_s"]
    print(f"{'workers':>7} {'tagging/s':>10} {'end-to-end/s':>13} {'per worker/s':>13} {'speed-up':>9} "
          f"{'504K LocNar-OID':>16}")
    for r in rows:
        r["speed_up"] = round(r["end_to_end_per_s"] / base, 2)
        print(f"{r['workers']:>7} {r['tagging_per_s']:>10} {r['end_to_end_per_s']:>13} "
              f"{r['end_to_end_per_s'] / r['workers']:>13.1f} {r['speed_up']:>9} {r['locnar_oid_hours']:>14} h")
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump({"spacy_model": model, "narratives": args.narratives, "mean_words": round(mean_words, 1),
                       "cpus": os.cpu_count(), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
