"""A resumable, shardable ALP curation run over Localized Narratives files -> ALPS.json.

The narratives of all inputs are numbered in reading order (non-blank lines); line ``g`` belongs to
shard ``g % N`` and to checkpoint chunk ``g // chunk_size``. Each finished chunk is written atomically
to ``<output>.parts/chunk_<k>.json`` (its ALPs and its report counts), so a killed run redoes only
the chunks it had not finished: lines of finished chunks are skipped without being parsed. Chunks are
the unit of parallel work too (``workers`` processes, each parsing, tagging and curating whole
chunks with its own spaCy pipeline). When every chunk is
done the parts are streamed into ALPS.json (temp file + ``os.replace``) and deleted. A parts folder
written with other settings (inputs, image info, spaCy pipeline, curation options, shard, chunk
size) is refused, never silently mixed.

Shards are complete ALPS.json files whose report carries the shard and the per-shard state;
:func:`merge_shards` joins N of them into the file one unsharded run would have written (ALPs in
reading order, ids renumbered), except for timing fields.
"""
from __future__ import annotations

import dataclasses
import hashlib
import heapq
import json
import logging
import os
import shutil
import time
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import orjson
from tqdm import tqdm

from alpseg.utils.io import atomic_open, atomic_write, atomic_write_json

from ..narratives import NarrativeFormatError, count_lines, iter_narrative_lines
from .config import CurationConfig
from .images import read_image_info
from .pipeline import head_lemmatizer, load_spacy_pipeline, spacy_model_id
from .report import CurationReport
from .stream import alp_sort_key, curate_stream

__all__ = ["CurationJob", "NothingToCurate", "parse_shard", "merge_shards", "write_alps_json"]

logger = logging.getLogger(__name__)
FORMAT_VERSION = 2  # 2: chunk files named by the digest of their input lines


class NothingToCurate(ValueError):
    """The inputs hold no narrative line: nothing to curate, nothing written."""


def parse_shard(text: str) -> Tuple[int, int]:
    """``"i/N"`` -> ``(i, N)`` with ``0 <= i < N``."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/N (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard {text!r}: need 0 <= i < N")
    return i, n


def write_alps_json(path: str, images: Sequence[Mapping[str, Any]], annotations: Iterable[Mapping[str, Any]],
                    phrases: Sequence[str], report: Mapping[str, Any]) -> None:
    """Write ALPS.json atomically, streaming the annotations (they may not fit in memory twice)."""
    with atomic_open(path) as f:
        f.write('{"images": ' + json.dumps(list(images)) + ',\n"annotations": [')
        for k, ann in enumerate(annotations):
            f.write(("\n" if k == 0 else ",\n") + json.dumps(ann))
        f.write('],\n"phrases": ' + json.dumps(list(phrases)) + ',\n"report": ' + json.dumps(report) + "}\n")


def _sorted_images(images: Mapping[str, Mapping[str, Any]], ids: Iterable[str]) -> List[Dict[str, Any]]:
    return [dict(images[i]) for i in sorted(set(ids))]


_WORKER: Dict[str, Any] = {}


def _init_worker(spacy_model: str, images: Mapping[str, Mapping[str, Any]], config: CurationConfig,
                 strict: bool, batch_size: int) -> None:
    """Per-process state of chunk curation (the pipeline is cached, so forked workers reuse it)."""
    nlp = load_spacy_pipeline(spacy_model)
    _WORKER.update(nlp=nlp, lemmatize=head_lemmatizer(nlp), images=images, config=config, strict=strict,
                   batch_size=batch_size)


def _curate_chunk(k: int, lines: Sequence[Tuple[int, str, int, bytes]]
                  ) -> Tuple[int, List[Dict[str, Any]], Dict[str, Any], Optional[NarrativeFormatError]]:
    """Curate one chunk of raw lines: ``(k, alps, report state, strict error or None)``."""
    w = _WORKER
    report = CurationReport()
    items = ((raw, path, line, input_index) for input_index, path, line, raw in lines)
    alps, error = curate_stream(items, w["images"], w["nlp"], w["config"], report, strict=w["strict"],
                                batch_size=w["batch_size"], lemmatize=w["lemmatize"])
    return k, alps, report.state(), error


@dataclasses.dataclass
class CurationJob:
    """One run of ``tools/curate_alps.py`` (see the module docstring for resume and shards)."""

    inputs: Sequence[str]
    image_info: str
    output: str
    spacy_model: str = "auto"
    config: CurationConfig = dataclasses.field(default_factory=CurationConfig)
    shard: Tuple[int, int] = (0, 1)
    workers: int = 1
    strict: bool = False
    chunk_size: int = 2000
    batch_size: int = 64
    progress: bool = True

    @property
    def parts_dir(self) -> str:
        return self.output + ".parts"

    def settings(self, model_id: str, image_info_sha256: str) -> Dict[str, Any]:
        """What determines the output and is known before reading the inputs (compared on resume).

        The inputs' content is checked chunk by chunk while they are read (see :meth:`_tasks`); their
        SHA-256 digests, computed on the same read, are added to the report's settings.
        """
        return {
            "format": FORMAT_VERSION,
            "inputs": [os.path.abspath(p) for p in self.inputs],
            "image_info": {"path": os.path.abspath(self.image_info), "sha256": image_info_sha256},
            "spacy_model": model_id,
            "options": self.config.options(),
        }

    # -- checkpoints ---------------------------------------------------------------------------
    def _chunk_path(self, k: int, digest: str) -> str:
        return os.path.join(self.parts_dir, f"chunk_{k:07d}_{digest}.json")

    def _chunk_files(self) -> Dict[int, Tuple[str, str]]:
        """``chunk index -> (file name, digest of its input lines)`` of the finished chunks."""
        out = {}
        for name in os.listdir(self.parts_dir):
            if name.startswith("chunk_") and name.endswith(".json"):
                index, digest = name[6:-5].split("_", 1)
                out[int(index)] = (name, digest)
        return out

    def _clean_stale_temps(self) -> None:
        """Remove the temp files a killed write of this output or of its checkpoints left behind."""
        folder = os.path.dirname(os.path.abspath(self.output))
        suffix = "-" + os.path.basename(self.output)
        stale = [os.path.join(folder, n) for n in (os.listdir(folder) if os.path.isdir(folder) else [])
                 if n.startswith(".tmp-") and n.endswith(suffix)]
        if os.path.isdir(self.parts_dir):
            stale += [os.path.join(self.parts_dir, n) for n in os.listdir(self.parts_dir) if n.startswith(".tmp-")]
        for path in stale:
            os.remove(path)
        if stale:
            logger.info("Removed %d temporary file(s) of an interrupted run", len(stale))

    def _open_parts(self, meta: Dict[str, Any]) -> Dict[int, Tuple[str, str]]:
        """Create or validate the parts folder; return its finished chunks (see :meth:`_chunk_files`)."""
        meta_path = os.path.join(self.parts_dir, "meta.json")
        if os.path.isdir(self.parts_dir) and os.path.isfile(meta_path):
            with open(meta_path, encoding="utf-8") as f:
                old = json.load(f)
            if old != meta:
                diff = sorted(k for k in set(old) | set(meta) if old.get(k) != meta.get(k))
                raise RuntimeError(
                    f"{self.parts_dir} holds a run with other settings (differs in: {', '.join(diff)}); "
                    f"delete it to start over, or run again with the same settings to resume it")
            done = self._chunk_files()
            if done:
                logger.info("Resuming: %d finished chunks in %s", len(done), self.parts_dir)
            return done
        os.makedirs(self.parts_dir, exist_ok=True)
        atomic_write_json(meta_path, meta)
        return {}

    def _finished_chunks(self, chunks: Sequence[int]) -> Iterator[Dict[str, Any]]:
        files = self._chunk_files()
        for k in sorted(chunks):
            with open(os.path.join(self.parts_dir, files[k][0]), "rb") as f:
                yield orjson.loads(f.read())

    # -- the run -------------------------------------------------------------------------------
    def _tasks(self, done: Mapping[int, Tuple[str, str]], verified: set, stats: Dict[str, Dict[str, Any]], bar
               ) -> Iterator[Tuple[int, str, List[Tuple[int, str, int, bytes]]]]:
        """``(chunk index, digest, this shard's raw lines of the chunk)`` for every chunk to curate.

        Every line of every chunk (all shards) is hashed with its position as it is read; a finished
        chunk whose digest still matches goes to ``verified`` without its lines being parsed, one whose
        input changed since it was written (an input edited in place) is curated again.
        """
        shard_i, shard_n = self.shard
        k_open, lines, digest = -1, [], hashlib.sha1()

        def close() -> Optional[Tuple[int, str, List[Tuple[int, str, int, bytes]]]]:
            hexdigest = digest.hexdigest()[:20]
            if k_open in done:
                if done[k_open][1] == hexdigest:
                    verified.add(k_open)
                    return None
                logger.warning("%s: the input lines of chunk %d changed since it was written; curating it again",
                               self.parts_dir, k_open)
                os.remove(os.path.join(self.parts_dir, done[k_open][0]))
            return k_open, hexdigest, lines

        for g, (input_index, path, line, raw) in enumerate(iter_narrative_lines(self.inputs, stats)):
            k = g // self.chunk_size
            if k != k_open:
                task = close() if k_open >= 0 else None
                if task is not None:
                    yield task
                k_open, lines, digest = k, [], hashlib.sha1()
            digest.update(b"%d:%d:" % (input_index, line))
            digest.update(raw)
            bar.update(1)
            if g % shard_n == shard_i:
                lines.append((input_index, path, line, raw))
        task = close() if k_open >= 0 else None
        if task is not None:
            yield task

    def run(self) -> Dict[str, Any]:
        """Curate every narrative of this shard and write ALPS.json; return the report.

        Chunks of lines are curated whole (parse, tag, align, boxes) by ``workers`` processes, each
        with its own spaCy pipeline; the main process only reads lines and writes checkpoints. With
        the small default pipeline this scales where spaCy's ``nlp.pipe(n_process=K)`` does not: there
        the main process, which parses the JSON and receives every Doc, is the bottleneck
        (docs/alp_curation.md, Throughput). Raises :class:`NothingToCurate` when the inputs hold no
        narrative line (nothing is written).
        """
        if self.workers < 1 or self.chunk_size < 1:
            raise ValueError("workers and chunk_size must be >= 1")
        start = time.perf_counter()
        for path in self.inputs:
            if not os.path.isfile(path):
                raise FileNotFoundError(f"Localized Narratives file not found: {path}; check --input")
        self._clean_stale_temps()
        images, info_sha256 = read_image_info(self.image_info)
        nlp = load_spacy_pipeline(self.spacy_model)
        settings = self.settings(spacy_model_id(nlp), info_sha256)
        shard_i, shard_n = self.shard
        done = self._open_parts(dict(settings, shard=[shard_i, shard_n], chunk_size=self.chunk_size))
        bar = tqdm(total=count_lines(self.inputs), unit="narr",
                   desc=f"curate ALPs{'' if shard_n == 1 else f' shard {shard_i}/{shard_n}'}",
                   disable=not self.progress, dynamic_ncols=True)
        session = CurationReport()  # what this process did, for the throughput figure
        errors: List[Tuple[int, NarrativeFormatError]] = []
        verified: set = set()  # chunks finished and checked against the inputs
        stats: Dict[str, Dict[str, Any]] = {}
        digests: Dict[int, str] = {}

        def tasks() -> Iterator[Tuple[int, List[Tuple[int, str, int, bytes]]]]:
            for k, digest, lines in self._tasks(done, verified, stats, bar):
                digests[k] = digest
                yield k, lines

        def finish(k: int, alps: List[Dict[str, Any]], state: Dict[str, Any],
                   error: Optional[NarrativeFormatError]) -> None:
            if error is not None:  # strict: nothing of this chunk is kept
                errors.append((k, error))
                return
            # orjson: a third of the time of json for these internal files (same values back)
            atomic_write(self._chunk_path(k, digests[k]), orjson.dumps({"chunk": k, "alps": alps, "report": state}))
            verified.add(k)
            session.add(CurationReport.from_state(state))

        context = (self.spacy_model, images, self.config, self.strict, self.batch_size)
        try:
            if self.workers == 1:
                _init_worker(*context)
                for k, lines in tasks():
                    finish(*_curate_chunk(k, lines))
                    if errors:
                        break
            else:
                self._run_pool(context, tasks(), finish, errors)
        finally:
            bar.close()
        if errors:
            raise min(errors, key=lambda e: e[0])[1]  # the first bad line in reading order
        empty = [p for p in self.inputs if stats[p]["lines"] == 0]
        for path in empty:
            logger.warning("%s holds no narrative (no non-blank line)", path)
        if len(empty) == len(self.inputs):
            shutil.rmtree(self.parts_dir, ignore_errors=True)
            raise NothingToCurate(f"no narrative in {', '.join(self.inputs)}: the input is empty; "
                                  f"check --input (nothing written)")
        for k, (name, _) in self._chunk_files().items():  # chunks past the end of inputs that shrank
            if k not in verified:
                os.remove(os.path.join(self.parts_dir, name))
        elapsed = time.perf_counter() - start
        timing = {"elapsed_s": round(elapsed, 3), "narratives_curated_now": session.counts["narratives_curated"],
                  "narratives_per_s": round(session.counts["narratives_curated"] / max(elapsed, 1e-9), 2),
                  "workers": self.workers}
        settings["input_files"] = [dict(stats[p], path=os.path.abspath(p)) for p in self.inputs]
        report = self._assemble(images, settings, timing, verified)
        shutil.rmtree(self.parts_dir, ignore_errors=True)
        return report

    def _run_pool(self, context, tasks, finish, errors) -> None:
        """Chunks to a process pool, at most two per worker in flight (bounded memory)."""
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        methods = multiprocessing.get_all_start_methods()  # fork shares the loaded pipeline and image index
        mp_context = multiprocessing.get_context("fork" if "fork" in methods else None)
        with ProcessPoolExecutor(self.workers, mp_context=mp_context, initializer=_init_worker,
                                 initargs=context) as pool:
            in_flight = set()
            for k, lines in tasks:
                in_flight.add(pool.submit(_curate_chunk, k, lines))
                while len(in_flight) >= 2 * self.workers:
                    finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                    for f in finished:
                        finish(*f.result())
                if errors:  # strict: stop reading; chunks already submitted may hold an earlier bad line
                    break
            for f in in_flight:
                finish(*f.result())

    def _assemble(self, images: Mapping[str, Mapping[str, Any]], settings: Dict[str, Any],
                  timing: Dict[str, Any], chunks: set) -> Dict[str, Any]:
        """Stream the finished chunks into ALPS.json (two passes: counts, then annotations)."""
        total = CurationReport()
        image_ids, phrases = set(), set()
        for part in self._finished_chunks(chunks):
            total.add(CurationReport.from_state(part["report"]))
            for alp in part["alps"]:
                image_ids.add(str(alp["image_id"]))
                phrases.add(alp["phrase"])
        report = total.to_dict(num_images=len(image_ids), num_unique_phrases=len(phrases))
        report.update(settings=settings, shard={"index": self.shard[0], "count": self.shard[1]}, timing=timing)
        if self.shard[1] > 1:
            report["state"] = total.state()  # merge_shards needs the image set, not only counts

        def annotations() -> Iterator[Dict[str, Any]]:
            next_id = 1
            for part in self._finished_chunks(chunks):
                for alp in part["alps"]:
                    alp["id"] = next_id
                    next_id += 1
                    yield alp

        write_alps_json(self.output, _sorted_images(images, image_ids), annotations(), sorted(phrases), report)
        return report


def merge_shards(paths: Sequence[str], output: str) -> Dict[str, Any]:
    """Join the ALPS.json files of shards ``0/N .. N-1/N`` of one run into ``output``."""
    shards = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            shards.append(json.load(f))
    for p, s in zip(paths, shards):
        if "shard" not in s.get("report", {}) or "state" not in s["report"]:
            raise ValueError(f"{p} is not a shard output of tools/curate_alps.py --shard i/N (N > 1)")
    counts = {s["report"]["shard"]["count"] for s in shards}
    settings = [s["report"]["settings"] for s in shards]
    if len(counts) != 1 or any(st != settings[0] for st in settings):
        raise ValueError("the shards come from runs with different settings or shard counts")
    n = counts.pop()
    indices = sorted(s["report"]["shard"]["index"] for s in shards)
    if indices != list(range(n)):
        raise ValueError(f"need each of the {n} shards exactly once, got shard indices {indices}")
    total = CurationReport()
    images: Dict[str, Dict[str, Any]] = {}
    phrases = set()
    for s in shards:
        total.add(CurationReport.from_state(s["report"]["state"]))
        images.update((str(im["id"]), im) for im in s["images"])
        phrases.update(s["phrases"])
    merged = heapq.merge(*[s["annotations"] for s in shards], key=alp_sort_key)
    report = total.to_dict(num_images=len(images), num_unique_phrases=len(phrases))
    report.update(settings=settings[0], shard={"index": 0, "count": 1}, merged_shards=n,
                  timing={"elapsed_s": round(sum(s["report"]["timing"]["elapsed_s"] for s in shards), 3)})

    def renumbered() -> Iterator[Dict[str, Any]]:
        for k, alp in enumerate(merged, start=1):
            alp["id"] = k
            yield alp

    write_alps_json(output, _sorted_images(images, images), renumbered(), sorted(phrases), report)
    return report
