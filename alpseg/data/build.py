"""Training and test data loaders of alpseg, built from a config.

* ``build_alpseg_train_loader(cfg)``: with ``DATALOADER.ALTERNATE_DATASETS`` every iteration's batch
  comes from one of ``DATASETS.TRAIN``, the datasets taking turns (:mod:`.samplers`); otherwise (with
  detectron2's default ``TrainingSampler``) the same schedule over the concatenated datasets, as a
  single dataset. Other samplers (``RepeatFactorTrainingSampler``, ...) use detectron2's standard
  loader. All map with :class:`~alpseg.data.mapper.AlpsegDatasetMapper`.

**Randomness of the data** (``ALPSEG.SEED_WORKERS``, on by default). The scheduled loaders map the
image at global batch position ``p`` of iteration ``i`` (``p = rank * images_per_process + slot``)
with python's, numpy's and torch's global RNGs seeded from ``(SEED, i, p)`` and restored afterwards.
So every image of a global batch gets its own augmentation draws (flip, LSJ scale and crop, ALP box
quantization) whatever the number of processes and workers: ranks differ, 2 processes x 2 images
draw exactly what 1 process x 4 images draws, and a resumed run at iteration ``i`` draws what the
uninterrupted run drew, with no loader state to checkpoint. The RNGs of the training process itself
(model-side sampling such as RPN / RoI sampling) are untouched by the mapping. detectron2's
standard loader (other samplers) seeds its workers per rank instead and resumes approximately
(a warning says so).
* ``build_alpseg_test_loader(cfg, name)``: detectron2's test loader with the test-mode mapper.

Empty images are filtered alpseg's way: an image is kept when it has a non-crowd annotation *or*
image-level phrases (``image_phrases``), which detectron2's filter would drop.
"""
from __future__ import annotations

import contextlib
import itertools
import logging
import random
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from detectron2.data import DatasetCatalog, DatasetFromList, build_detection_test_loader
from detectron2.data import build_detection_train_loader
from detectron2.data.build import worker_init_reset_seed
from detectron2.utils import comm

from .mapper import AlpsegDatasetMapper
from .samplers import AlternatingBatchSchedule

__all__ = ["get_alpseg_dataset_dicts", "AlternatingBatchDataset", "build_alpseg_train_loader",
           "build_alpseg_test_loader", "seeded_global_rngs", "training_phrases"]

logger = logging.getLogger(__name__)
MAX_SKIPS_PER_SAMPLE = 20


def _has_supervision(d: Dict) -> bool:
    return any(a.get("iscrowd", 0) == 0 for a in d.get("annotations", [])) or bool(d.get("image_phrases"))


def add_class_phrases(name: str, dicts: List[Dict]) -> None:
    """Give annotations of datasets registered outside alpseg (detectron2's builtin COCO, LVIS, ...)
    their ``phrase``: the normalized class name of ``category_id`` in the dataset's ``thing_classes``."""
    missing = [a for d in dicts for a in d.get("annotations", []) if "phrase" not in a]
    if not missing:
        return
    from detectron2.data import MetadataCatalog

    from alpseg.text.prompts import normalize_phrase

    classes = getattr(MetadataCatalog.get(name), "thing_classes", None)
    if classes is None:
        raise KeyError(f"dataset {name!r} has annotations without 'phrase' and no thing_classes to name them")
    phrases = [normalize_phrase(c) for c in classes]
    for a in missing:
        a["phrase"] = phrases[a["category_id"]]
        a.setdefault("is_alp", False)


def _dataset_root_error(name: str, err: OSError) -> FileNotFoundError:
    """One line for a dataset whose files are missing: which file, which root, what to set."""
    import os

    root = os.environ.get("DETECTRON2_DATASETS", "datasets")
    missing = getattr(err, "filename", None) or str(err)
    return FileNotFoundError(
        f"dataset {name!r}: {missing} does not exist; DETECTRON2_DATASETS is {root!r} -- point it at the folder "
        f"that holds the dataset tree (see datasets/README.md)"
    )


def get_alpseg_dataset_dicts(name: str, filter_empty: bool = True) -> List[Dict]:
    """Dataset dicts of ``name``, without images that supervise nothing when ``filter_empty``.

    A missing dataset file is one ``FileNotFoundError`` naming it and ``DETECTRON2_DATASETS``.
    """
    try:
        dicts = DatasetCatalog.get(name)
    except (FileNotFoundError, NotADirectoryError) as e:
        raise _dataset_root_error(name, e) from None
    if not dicts:
        raise ValueError(f"dataset {name!r} is empty")
    add_class_phrases(name, dicts)
    if filter_empty:
        kept = [d for d in dicts if _has_supervision(d)]
        if len(kept) < len(dicts):
            logger.info("%s: removed %d of %d images without annotations or image phrases", name,
                        len(dicts) - len(kept), len(dicts))
        if not kept:
            raise ValueError(f"dataset {name!r} has no image with annotations or image phrases")
        dicts = kept
    return dicts


def training_phrases(datasets: Sequence[Sequence[Dict]]) -> Dict[str, List[str]]:
    """Every phrase a training batch can ask the phrase bank for, unique, in first-seen order:
    ``{"boxes": non-ALP annotations' phrases, "alps": ALP annotations' phrases and image_phrases}``."""
    boxes: Dict[str, None] = {}
    alps: Dict[str, None] = {}
    for dicts in datasets:
        for d in dicts:
            for a in d.get("annotations", ()):
                if "phrase" in a:
                    (alps if a.get("is_alp", False) else boxes).setdefault(a["phrase"], None)
            for p in d.get("image_phrases", None) or ():
                alps.setdefault(p, None)
    return {"boxes": list(boxes), "alps": list(alps)}


def _identity(x):
    return x


@contextlib.contextmanager
def seeded_global_rngs(entropy: Sequence[int]):
    """Seed python's, numpy's and torch's global RNGs from ``entropy`` for the block, then put back
    the states they had before (so the caller's own random stream is not disturbed)."""
    saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
    a, b = np.random.SeedSequence([int(e) for e in entropy]).generate_state(2)
    random.seed(int(a))
    np.random.seed(int(a))
    torch.manual_seed(int(b))
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.set_rng_state(saved[2])


class AlternatingBatchDataset(torch.utils.data.IterableDataset):
    """Yields whole mapped batches, iteration ``start_iter`` onwards, following a schedule.

    Worker ``w`` of ``W`` makes the batches of iterations ``start_iter + w, start_iter + w + W, ...``;
    PyTorch's loader returns workers' outputs round-robin, so batches arrive in iteration order.
    With ``seed_augmentations`` each image is mapped under :func:`seeded_global_rngs` of
    ``(seed, iteration, global batch position)`` (see the module docstring).
    """

    def __init__(self, datasets: Sequence[Sequence[Dict]], mapper: Callable, schedule: AlternatingBatchSchedule,
                 seed: int, start_iter: int = 0, seed_augmentations: bool = True):
        self.datasets = datasets
        self.mapper = mapper
        self.schedule = schedule
        self.seed = seed
        self.start_iter = start_iter
        self.seed_augmentations = seed_augmentations

    def _map(self, d: int, index: int, iteration: int, slot: int) -> Dict:
        """The mapped image ``index``; an unreadable one is replaced by a seeded random other one.
        ``slot`` is the image's position in the global batch (the same on every process count)."""
        data = self.datasets[d]
        for attempt in range(MAX_SKIPS_PER_SAMPLE + 1):
            if self.seed_augmentations:
                with seeded_global_rngs([self.seed, iteration, slot, attempt]):
                    out = self.mapper(data[index])
            else:
                out = self.mapper(data[index])
            if out is not None:
                return out
            rng = np.random.default_rng([self.seed, iteration, slot, attempt])
            index = int(rng.integers(len(data)))
        raise RuntimeError(f"{MAX_SKIPS_PER_SAMPLE + 1} images in a row could not be used (training dataset "
                           f"#{d}, iteration {iteration}); see the warnings above")

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        first_slot = self.schedule.rank * self.schedule.batch_size
        for iteration in itertools.count(self.start_iter + worker, num_workers):
            d, indices = self.schedule.indices_at(iteration)
            yield [self._map(d, j, iteration, first_slot + k) for k, j in enumerate(indices)]


def _train_seed(cfg) -> int:
    return int(cfg.SEED) if cfg.SEED >= 0 else int(comm.shared_random_seed())


def build_alpseg_train_loader(cfg, mapper: Optional[Callable] = None, start_iter: int = 0):
    """The training loader of ``cfg`` (see the module docstring); yields lists of mapped dicts.

    Iteration ``start_iter`` is the first one it yields (a resumed run continues the interrupted
    run's batches and augmentations). The returned loader has a ``phrases`` attribute: the phrases
    its datasets can put in a batch (:func:`training_phrases`), for checks before training starts.
    """
    names = list(cfg.DATASETS.TRAIN)
    if not names:
        raise ValueError("DATASETS.TRAIN is empty")
    mapper = mapper if mapper is not None else AlpsegDatasetMapper(cfg, True)
    datasets = [get_alpseg_dataset_dicts(n, cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS) for n in names]
    phrases = training_phrases(datasets)
    seed = _train_seed(cfg)
    world, rank = comm.get_world_size(), comm.get_rank()
    alternate = cfg.DATALOADER.ALTERNATE_DATASETS
    if not alternate and cfg.DATALOADER.ALTERNATE_RATIO:
        raise ValueError("DATALOADER.ALTERNATE_RATIO is set but DATALOADER.ALTERNATE_DATASETS is False")
    if cfg.DATALOADER.SAMPLER_TRAIN != "TrainingSampler":
        if alternate:
            raise ValueError(f"DATALOADER.ALTERNATE_DATASETS shuffles each dataset itself; it cannot be combined "
                             f"with DATALOADER.SAMPLER_TRAIN={cfg.DATALOADER.SAMPLER_TRAIN!r}")
        if start_iter:
            logger.warning("DATALOADER.SAMPLER_TRAIN=%s uses detectron2's loader, which cannot start at iteration "
                           "%d: the resumed run draws new batches (exact resume needs TrainingSampler)",
                           cfg.DATALOADER.SAMPLER_TRAIN, start_iter)
        # per-rank worker seeds: ranks must not repeat each other's augmentation draws
        loader_seed = int(np.random.SeedSequence([seed, rank]).generate_state(1)[0]) if cfg.ALPSEG.SEED_WORKERS else None
        loader = build_detection_train_loader(cfg, mapper=mapper, dataset=list(itertools.chain(*datasets)),
                                              seed=loader_seed)
        loader.phrases = phrases
        return loader
    total = cfg.SOLVER.IMS_PER_BATCH
    if total % world:
        raise ValueError(f"SOLVER.IMS_PER_BATCH ({total}) must be divisible by the number of processes ({world})")
    if not alternate:  # one dataset: the concatenation of DATASETS.TRAIN, scheduled the same way
        datasets = [list(itertools.chain(*datasets))]
    schedule = AlternatingBatchSchedule([len(d) for d in datasets], total // world, seed,
                                        ratio=list(cfg.DATALOADER.ALTERNATE_RATIO), rank=rank, world_size=world)
    if alternate:
        logger.info("Alternating batches over %s (sizes %s), turns %s, %d images per process and iteration; "
                    "aspect-ratio grouping does not apply", names, [len(d) for d in datasets], schedule.turns,
                    total // world)
    else:
        logger.info("Scheduled batches over %s (%d images), %d images per process and iteration, from iteration "
                    "%d; aspect-ratio grouping does not apply", names, len(datasets[0]), total // world, start_iter)
    dataset = AlternatingBatchDataset([DatasetFromList(d, copy=False) for d in datasets], mapper, schedule,
                                      seed, start_iter, seed_augmentations=cfg.ALPSEG.SEED_WORKERS)
    # Own generator: creating the loader's iterator must not draw from the process's torch RNG, or a
    # resumed run (iterator made at another point of the random stream) would diverge.
    generator = torch.Generator()
    generator.manual_seed(seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=cfg.DATALOADER.NUM_WORKERS,
                                         collate_fn=_identity, worker_init_fn=worker_init_reset_seed,
                                         generator=generator)
    loader.phrases = phrases
    return loader


def build_alpseg_test_loader(cfg, dataset_name: str, mapper: Optional[Callable] = None):
    """detectron2's test loader of ``dataset_name`` with alpseg's test-mode mapper."""
    mapper = mapper if mapper is not None else AlpsegDatasetMapper(cfg, False)
    try:
        return build_detection_test_loader(cfg, dataset_name, mapper=mapper)
    except (FileNotFoundError, NotADirectoryError) as e:
        raise _dataset_root_error(dataset_name, e) from None
