"""Training and test data loaders of alpseg, built from a config.

* ``build_alpseg_train_loader(cfg)``: with ``DATALOADER.ALTERNATE_DATASETS`` every iteration's batch
  comes from one of ``DATASETS.TRAIN``, the datasets taking turns (:mod:`.samplers`); otherwise
  detectron2's standard loader (its samplers, aspect-ratio grouping) over the concatenated datasets.
  Both map with :class:`~alpseg.data.mapper.AlpsegDatasetMapper`.
* ``build_alpseg_test_loader(cfg, name)``: detectron2's test loader with the test-mode mapper.

Empty images are filtered alpseg's way: an image is kept when it has a non-crowd annotation *or*
image-level phrases (``image_phrases``), which detectron2's filter would drop.
"""
from __future__ import annotations

import itertools
import logging
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
           "build_alpseg_test_loader"]

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


def get_alpseg_dataset_dicts(name: str, filter_empty: bool = True) -> List[Dict]:
    """Dataset dicts of ``name``, without images that supervise nothing when ``filter_empty``."""
    dicts = DatasetCatalog.get(name)
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


def _identity(x):
    return x


class AlternatingBatchDataset(torch.utils.data.IterableDataset):
    """Yields whole mapped batches, iteration ``start_iter`` onwards, following a schedule.

    Worker ``w`` of ``W`` makes the batches of iterations ``start_iter + w, start_iter + w + W, ...``;
    PyTorch's loader returns workers' outputs round-robin, so batches arrive in iteration order.
    """

    def __init__(self, datasets: Sequence[Sequence[Dict]], mapper: Callable, schedule: AlternatingBatchSchedule,
                 seed: int, start_iter: int = 0):
        self.datasets = datasets
        self.mapper = mapper
        self.schedule = schedule
        self.seed = seed
        self.start_iter = start_iter

    def _map(self, d: int, index: int, iteration: int, slot: int) -> Dict:
        """The mapped image ``index``; an unreadable one is replaced by a seeded random other one."""
        data = self.datasets[d]
        for attempt in range(MAX_SKIPS_PER_SAMPLE + 1):
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
        for iteration in itertools.count(self.start_iter + worker, num_workers):
            d, indices = self.schedule.indices_at(iteration)
            yield [self._map(d, j, iteration, slot) for slot, j in enumerate(indices)]


def _train_seed(cfg) -> int:
    return int(cfg.SEED) if cfg.SEED >= 0 else int(comm.shared_random_seed())


def build_alpseg_train_loader(cfg, mapper: Optional[Callable] = None, start_iter: int = 0):
    """The training loader of ``cfg`` (see the module docstring); yields lists of mapped dicts."""
    names = list(cfg.DATASETS.TRAIN)
    if not names:
        raise ValueError("DATASETS.TRAIN is empty")
    mapper = mapper if mapper is not None else AlpsegDatasetMapper(cfg, True)
    datasets = [get_alpseg_dataset_dicts(n, cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS) for n in names]
    seed = _train_seed(cfg)
    loader_seed = seed if cfg.ALPSEG.SEED_WORKERS else None
    if not cfg.DATALOADER.ALTERNATE_DATASETS:
        if cfg.DATALOADER.ALTERNATE_RATIO:
            raise ValueError("DATALOADER.ALTERNATE_RATIO is set but DATALOADER.ALTERNATE_DATASETS is False")
        return build_detection_train_loader(cfg, mapper=mapper, dataset=list(itertools.chain(*datasets)),
                                            seed=loader_seed)
    if cfg.DATALOADER.SAMPLER_TRAIN != "TrainingSampler":
        raise ValueError(f"DATALOADER.ALTERNATE_DATASETS shuffles each dataset itself; it cannot be combined "
                         f"with DATALOADER.SAMPLER_TRAIN={cfg.DATALOADER.SAMPLER_TRAIN!r}")
    world = comm.get_world_size()
    total = cfg.SOLVER.IMS_PER_BATCH
    if total % world:
        raise ValueError(f"SOLVER.IMS_PER_BATCH ({total}) must be divisible by the number of processes ({world})")
    schedule = AlternatingBatchSchedule([len(d) for d in datasets], total // world, seed,
                                        ratio=list(cfg.DATALOADER.ALTERNATE_RATIO), rank=comm.get_rank(),
                                        world_size=world)
    logger.info("Alternating batches over %s (sizes %s), turns %s, %d images per process and iteration; "
                "aspect-ratio grouping does not apply", names, [len(d) for d in datasets], schedule.turns,
                total // world)
    dataset = AlternatingBatchDataset([DatasetFromList(d, copy=False) for d in datasets], mapper, schedule,
                                      seed, start_iter)
    generator = None
    if loader_seed is not None:
        generator = torch.Generator()
        generator.manual_seed(loader_seed)
    return torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=cfg.DATALOADER.NUM_WORKERS,
                                       collate_fn=_identity, worker_init_fn=worker_init_reset_seed,
                                       generator=generator)


def build_alpseg_test_loader(cfg, dataset_name: str, mapper: Optional[Callable] = None):
    """detectron2's test loader of ``dataset_name`` with alpseg's test-mode mapper."""
    mapper = mapper if mapper is not None else AlpsegDatasetMapper(cfg, False)
    return build_detection_test_loader(cfg, dataset_name, mapper=mapper)
