#!/usr/bin/env python
"""Throughput of ALP curation: per-stage profile, ratio to bare spaCy, and scaling with workers.

Synthetic narratives with the size of real LocNar-OID records (about 36 words per caption, one
utterance per word, a mouse point every 40 ms over the whole narration) are written to a JSONL file.
On those captions it measures, in one process:

* ``stages``: the CPU milliseconds per narrative of each stage of curation run on its own -- JSON
  parse and validation, spaCy, phrase rules, word alignment, boxes -- (a profile without profiler
  overhead);
* ``ratio_to_bare_spacy``: ``CurationJob(workers=1)`` (read + validate + tag + phrases + align +
  boxes + checkpoints + ALPS.json) against bare ``nlp.pipe(captions)`` of spaCy's standard tagging
  pipeline (tok2vec, tagger, attribute_ruler: what gives ``pos_``), both on the same captions, one
  process, in CPU time of the process (median of interleaved repeats); the goal of #24 is >= 0.8. ``ratio_to_curation_tagger`` uses curation's own tagging
  pipeline (the attribute ruler replaced by table look-ups) as the reference instead.
* per worker count K, in wall-clock time: spaCy's ``nlp.pipe(n_process=K)`` and
  ``CurationJob(workers=K)``.

  python bench/bench_curate_alps.py --narratives 2000 --workers 1 2 --output bench_curate.json
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

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
    """``(curation package, its job module)`` (kept for bench/run.py)."""
    import alpseg.data.curation as curation
    import alpseg.data.curation.job as job

    return curation, job


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


def stage_profile(path: str, info: str, spacy_model: str, batch_size: int) -> dict:
    """Seconds per narrative of each curation stage, each run on its own over all narratives."""
    from alpseg.data.curation import CurationConfig, WordTimer, extract_phrases, head_lemmatizer, load_spacy_pipeline
    from alpseg.data.curation.boxes import trace_box
    from alpseg.data.narratives import parse_narrative_line

    nlp = load_spacy_pipeline(spacy_model)
    config = CurationConfig()
    lemmatize = head_lemmatizer(nlp)
    with open(path, "rb") as f:
        raw = f.read().splitlines()
    t = {}
    t0 = time.process_time()
    narratives = [parse_narrative_line(line, source=path, line=k + 1) for k, line in enumerate(raw)]
    t["json_parse_and_validate"] = time.process_time() - t0
    t0 = time.process_time()
    docs = list(nlp.pipe([n.caption for n in narratives], batch_size=batch_size))
    t["spacy"] = time.process_time() - t0
    t0 = time.process_time()
    phrases = [extract_phrases(doc, config, lemmatize)[0] for doc in docs]
    t["phrases"] = time.process_time() - t0
    t0 = time.process_time()
    windows = []
    for narrative, spans in zip(narratives, phrases):
        timer = WordTimer(narrative.caption, narrative.timed_caption)
        windows.append([timer.interval(p.char_start, p.char_end)[0] for p in spans])
    t["alignment"] = time.process_time() - t0
    t0 = time.process_time()
    for narrative, ws in zip(narratives, windows):
        for w in ws:
            if w is not None:
                trace_box(narrative.points, w[0], w[1], config.temporal_padding, 1024, 768, config.min_box_size,
                          config.min_line_length, config.line_width_ratio)
    t["boxes"] = time.process_time() - t0
    return {k: round(v / len(raw) * 1000, 3) for k, v in t.items()}  # ms per narrative


def bare_spacy_rate(captions, spacy_model: str, batch_size: int, n_process: int = 1, clock=time.perf_counter) -> float:
    """Narratives/s of spaCy's standard tagging pipeline alone (tok2vec, tagger, attribute_ruler)."""
    import spacy

    from alpseg.data.curation import resolve_spacy_model

    nlp = spacy.load(resolve_spacy_model(spacy_model), exclude=["parser", "ner", "senter", "lemmatizer"])
    t0 = clock()
    n = sum(1 for _ in nlp.pipe(captions, n_process=n_process, batch_size=batch_size))
    return n / (clock() - t0)


def measure(n: int, spacy_model: str = "auto", batch_size: int = 64, chunk_size: int = 250, seed: int = 0,
            workers=(1,), repeats: int = 1) -> dict:
    """All figures of this benchmark (also used by bench/run.py)."""
    curation, job_mod = _import_curation()
    nlp = curation.load_spacy_pipeline(spacy_model)
    out = {"spacy_model": curation.spacy_model_id(nlp), "narratives": n, "cpus": os.cpu_count(),
           "load_average": round(os.getloadavg()[0], 2), "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        path, info, captions, mean_words = write_inputs(tmp, n, seed)
        out["mean_words"] = round(mean_words, 1)
        out["jsonl_mib"] = round(os.path.getsize(path) / 2 ** 20, 1)
        out["stages_ms_per_narrative"] = stage_profile(path, info, spacy_model, batch_size)

        def curate(k: int, clock=time.perf_counter) -> float:
            job = job_mod.CurationJob(inputs=[path], image_info=info, output=os.path.join(tmp, f"alps{k}.json"),
                                      spacy_model=spacy_model, workers=k, batch_size=batch_size,
                                      chunk_size=chunk_size, progress=False)
            t0 = clock()
            report = job.run()
            return report["narratives_curated"] / (clock() - t0)

        def own_tagger() -> float:
            t0 = time.process_time()
            m = sum(1 for _ in nlp.pipe(captions, batch_size=batch_size))
            return m / (time.process_time() - t0)

        # interleaved repeats in CPU time of this process (one worker: everything runs here), so that
        # other jobs on a shared machine count less; the three figures see the same machine state
        cpu = time.process_time
        bare, own, job = [], [], []
        for _ in range(repeats):
            bare.append(bare_spacy_rate(captions, spacy_model, batch_size, clock=cpu))
            own.append(own_tagger())
            job.append(curate(1, clock=cpu))
        out["bare_spacy_per_s"] = round(float(np.median(bare)), 1)
        out["curation_tagger_per_s"] = round(float(np.median(own)), 1)
        out["end_to_end_per_s"] = round(float(np.median(job)), 1)
        out["ratio_to_bare_spacy"] = round(float(np.median(np.array(job) / np.array(bare))), 3)
        out["ratio_to_curation_tagger"] = round(float(np.median(np.array(job) / np.array(own))), 3)
        for k in workers:  # wall clock: the work of K processes
            rate = curate(k)
            out["rows"].append({"workers": k, "tagging_per_s": round(bare_spacy_rate(captions, spacy_model, batch_size,
                                                                                      k), 1),
                                "end_to_end_per_s": round(rate, 1),
                                "locnar_oid_hours": round(LOCNAR_OID / rate / 3600, 2)})
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--narratives", type=int, default=2000)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--spacy-model", default="auto")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--chunk-size", type=int, default=250, help="narratives per chunk (the unit of parallel work)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats of the ratio measurement (median)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default=None, help="write the figures here (JSON)")
    args = p.parse_args()
    r = measure(args.narratives, args.spacy_model, args.batch_size, args.chunk_size, args.seed, args.workers,
                args.repeats)
    print(f"{r['narratives']} synthetic narratives, {r['mean_words']} words/caption, {r['jsonl_mib']} MiB JSONL; "
          f"spaCy {r['spacy_model']}; {r['cpus']} CPUs; load average {r['load_average']}")
    print("stages (CPU ms per narrative): " + ", ".join(f"{k} {v}" for k, v in r["stages_ms_per_narrative"].items()))
    print(f"1 worker, per CPU-second: bare spaCy tagging {r['bare_spacy_per_s']}/s, curation's tagger {r['curation_tagger_per_s']}/s, "
          f"whole curation {r['end_to_end_per_s']}/s: ratio to bare spaCy {r['ratio_to_bare_spacy']} (goal >= 0.8), "
          f"to curation's tagger {r['ratio_to_curation_tagger']}")
    base = r["rows"][0]["end_to_end_per_s"]
    print(f"{'workers':>7} {'tagging/s':>10} {'end-to-end/s':>13} {'per worker/s':>13} {'speed-up':>9} "
          f"{'504K LocNar-OID':>16}")
    for row in r["rows"]:
        row["speed_up"] = round(row["end_to_end_per_s"] / base, 2)
        print(f"{row['workers']:>7} {row['tagging_per_s']:>10} {row['end_to_end_per_s']:>13} "
              f"{row['end_to_end_per_s'] / row['workers']:>13.1f} {row['speed_up']:>9} {row['locnar_oid_hours']:>14} h")
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump(r, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
