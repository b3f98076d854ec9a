"""detectron2 fine-tuning transfer tasks: COCO / LVIS instance segmentation, VOC07+12 detection and
LocTex's limited-data COCO, each from a config in ``configs/transfer/``.

A task loads its config (``_BASE_`` chains into detectron2's model zoo), points ``MODEL.WEIGHTS`` at
the converted backbone pkl and trains with :class:`TransferTrainer` (alpseg's trainer with
detectron2's stock data loaders, since these are standard closed-vocabulary datasets). Right after
the weights are loaded every backbone tensor is checked to sit unchanged in the model
(:func:`~alpseg.transfer.checkpoints.verify_backbone_loaded`), so a run never trains from a partly
loaded backbone. ``resume`` continues from the task's last detectron2 checkpoint. Training runs
under detectron2's ``launch`` (``num_gpus`` processes); the main process writes the evaluation
results to ``<output_dir>/d2_results.json``, which is what the caller reads back.

LocTex limited-data COCO: the training set is a fixed, seeded fraction of ``coco_2017_train``
(:func:`~alpseg.transfer.builtin_datasets.register_subset`) and ``MAX_ITER`` / ``STEPS`` are scaled by
the same fraction (at least one iteration); explicit overrides still win.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
import pickle
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
import yaml
from detectron2.data import (MetadataCatalog, build_detection_test_loader, build_detection_train_loader,
                             get_detection_dataset_dicts)
from detectron2.data.samplers import RepeatFactorTrainingSampler, TrainingSampler
from detectron2.engine import launch
from detectron2.evaluation.testing import flatten_results_dict
from detectron2.utils import comm
from detectron2.utils.env import seed_all_rng
from detectron2.utils.logger import setup_logger

from alpseg.config import load_config
from alpseg.engine import AlpsegTrainer
from alpseg.utils.io import atomic_write, atomic_write_json

from . import roi_heads  # noqa: F401  (Res5ROIHeadsExtraNorm must be registered in every process)
from .backbone import ARCH_DEPTHS
from .builtin_datasets import register_subset, register_under_root, required_paths, subset_name
from .checkpoints import verify_backbone_loaded
from .logs import task_log
from .tasks import check_arch

__all__ = ["Detectron2TaskSpec", "TransferTrainer", "build_task_cfg", "missing_dataset_paths",
           "run_detectron2_task", "flatten_results"]

logger = logging.getLogger(__name__)

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                          "configs", "transfer")
RESULTS_FILE = "d2_results.json"


@dataclasses.dataclass(frozen=True)
class Detectron2TaskSpec:
    """A detectron2 transfer task: its config and, for LocTex, the training fraction."""

    config: str  # file name under configs/transfer/ or a path
    subset_percent: Optional[float] = None  # train on this % of DATASETS.TRAIN[0], schedule scaled
    subset_seed: int = 0

    @property
    def config_path(self) -> str:
        return self.config if os.path.isfile(self.config) else os.path.join(CONFIG_DIR, self.config)


class TransferTrainer(AlpsegTrainer):
    """AlpsegTrainer (evaluators from metadata, CPU-safe AMP) with detectron2's stock loaders."""

    @classmethod
    def build_train_loader(cls, cfg, start_iter: int = 0):
        """detectron2's loader, whose sampler starts after the samples of ``start_iter`` iterations.

        The sampler is detectron2's (``DATALOADER.SAMPLER_TRAIN``: ``TrainingSampler`` or
        ``RepeatFactorTrainingSampler``) built here so that it can be seeded and started late:
        seeded by ``SEED`` when it is >= 0 (else a fresh shared seed, as detectron2 does), it drops its
        first ``start_iter * images per process`` indices. With ``SEED`` >= 0 and one aspect-ratio group
        (or batches that fill each group evenly) a resumed run sees the interrupted run's batches; with
        ``DATALOADER.NUM_WORKERS`` 0 it ends with the uninterrupted run's weights to the bit (with workers,
        each start reseeds them, so a resumed run's augmentations are redrawn).
        """
        dataset = get_detection_dataset_dicts(cfg.DATASETS.TRAIN,
                                              filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS)
        seed = cfg.SEED if cfg.SEED >= 0 else None
        name = cfg.DATALOADER.SAMPLER_TRAIN
        if name == "TrainingSampler":
            sampler = TrainingSampler(len(dataset), seed=seed)
        elif name == "RepeatFactorTrainingSampler":
            factors = RepeatFactorTrainingSampler.repeat_factors_from_category_frequency(
                dataset, cfg.DATALOADER.REPEAT_THRESHOLD, sqrt=cfg.DATALOADER.REPEAT_SQRT)
            sampler = RepeatFactorTrainingSampler(factors, seed=seed)
        else:
            raise ValueError(f"transfer tasks support DATALOADER.SAMPLER_TRAIN TrainingSampler or "
                             f"RepeatFactorTrainingSampler, not {name!r}")
        skip = start_iter * (cfg.SOLVER.IMS_PER_BATCH // comm.get_world_size())
        # ``seed`` gives the DataLoader its own generator: without one, making the iterator draws from the
        # process's torch RNG, at iteration 0 in a fresh run but at ``start_iter`` in a resumed one, and
        # every later random draw (proposal sampling) would differ from the uninterrupted run's.
        return build_detection_train_loader(cfg, dataset=dataset, sampler=_SkipSampler(sampler, skip),
                                            seed=seed)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        return build_detection_test_loader(cfg, dataset_name)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        if getattr(MetadataCatalog.get(dataset_name), "evaluator_type", None) == "lvis":
            _lvis_numpy_compat()
        return super().build_evaluator(cfg, dataset_name, output_folder)


class _SkipSampler(torch.utils.data.Sampler):
    """An infinite sampler without its first ``skip`` indices."""

    def __init__(self, sampler, skip: int):
        self.sampler, self.skip = sampler, skip

    def __iter__(self):
        return itertools.islice(iter(self.sampler), self.skip, None)


def _lvis_numpy_compat() -> None:
    """lvis 0.5.3 (the newest on PyPI) accumulates with ``np.float``, which numpy 1.24 removed;
    give it back the alias (``float``, what it always meant) before LVIS evaluation runs."""
    if "float" not in np.__dict__:
        np.float = float  # type: ignore[attr-defined]


def _schedule_opts(cfg, fraction: float) -> List[str]:
    max_iter = max(1, int(round(cfg.SOLVER.MAX_ITER * fraction)))
    steps = tuple(max(1, int(round(s * fraction))) for s in cfg.SOLVER.STEPS)
    return ["SOLVER.MAX_ITER", str(max_iter), "SOLVER.STEPS", str(steps)]


def build_task_cfg(spec: Detectron2TaskSpec, backbone_pkl: str, output_dir: str, opts: Sequence[str] = (),
                   use_gpu: Optional[bool] = None, arch: str = "resnet50"):
    """The task's config: the depth of ``arch``, schedule scaling (LocTex), then ``opts``, then
    weights / output / device, which belong to the suite."""
    path = spec.config_path
    cfg = load_config(path)
    cfg.MODEL.RESNETS.DEPTH = ARCH_DEPTHS[check_arch(arch)]
    extra: List[str] = []
    if spec.subset_percent is not None:
        extra += _schedule_opts(cfg, spec.subset_percent / 100.0)
        base = cfg.DATASETS.TRAIN[0]
        extra += ["DATASETS.TRAIN", str((subset_name(base, spec.subset_percent, spec.subset_seed),))]
    cfg.merge_from_list(extra + list(opts))
    cfg.MODEL.WEIGHTS = backbone_pkl
    cfg.OUTPUT_DIR = output_dir
    if use_gpu is None:
        use_gpu = torch.cuda.is_available()
    if not use_gpu:
        cfg.MODEL.DEVICE = "cpu"
    return cfg


def dataset_names(cfg, spec: Detectron2TaskSpec) -> List[str]:
    train = list(cfg.DATASETS.TRAIN)
    if spec.subset_percent is not None:
        train = [load_config(spec.config_path).DATASETS.TRAIN[0]]
    return train + list(cfg.DATASETS.TEST)


def missing_dataset_paths(cfg, spec: Detectron2TaskSpec, datasets_root: str) -> List[str]:
    """Expected files / folders of the task's datasets that do not exist under ``datasets_root``."""
    return [p for name in dataset_names(cfg, spec) for p in required_paths(name, datasets_root)
            if not os.path.exists(p)]


def flatten_results(results: Dict[str, Any], prefix: str = "") -> Dict[str, float]:
    """``{"bbox": {"AP": 1}}`` -> ``{"bbox/AP": 1.0}`` (detectron2's ``flatten_results_dict``, as floats)."""
    return {f"{prefix}{k}": float(v) for k, v in flatten_results_dict(results).items()}


def _load_pkl_weights(path: str) -> Dict[str, torch.Tensor]:
    with open(path, "rb") as f:
        payload = pickle.load(f)
    return {k: torch.as_tensor(v) for k, v in payload["model"].items()}


def _train_worker(cfg, spec: Detectron2TaskSpec, datasets_root: str, resume: bool) -> None:
    """Runs in every launched process: register data, build, load + verify, train, evaluate."""
    if comm.get_world_size() > 1:  # a fresh process started by launch: no handlers yet
        setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="alpseg")
        setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="detectron2", abbrev_name="d2")
    names = dataset_names(cfg, spec)
    for name in names:
        register_under_root(name, datasets_root)
    if spec.subset_percent is not None:
        register_subset(names[0], spec.subset_percent, spec.subset_seed,
                        record_file=os.path.join(cfg.OUTPUT_DIR, "subset.json") if comm.is_main_process() else "")
    cfg.freeze()
    # As detectron2's default_setup (which this path does not run): the model's initial weights and the
    # augmentations follow SEED, so a run is repeatable and a resumed one matches the uninterrupted one.
    seed_all_rng(cfg.SEED + comm.get_rank())
    trainer = TransferTrainer(cfg)
    resumed = resume and trainer.checkpointer.has_checkpoint()
    trainer.resume_or_load(resume=resume)
    if not resumed:
        model = trainer.model.module if hasattr(trainer.model, "module") else trainer.model
        verified = verify_backbone_loaded(model, _load_pkl_weights(cfg.MODEL.WEIGHTS))
        logger.info("backbone verified: %d tensors loaded from %s", len(verified), cfg.MODEL.WEIGHTS)
    trainer.train()
    # DefaultTrainer.train() returns results only with TEST.EXPECTED_RESULTS; the final EvalHook
    # keeps them here, and a run resumed after its last evaluation evaluates again.
    results = getattr(trainer, "_last_eval_results", None)
    if results is None:
        results = TransferTrainer.test(cfg, trainer.model)
    if comm.is_main_process():
        atomic_write_json(os.path.join(cfg.OUTPUT_DIR, RESULTS_FILE), {
            "results": results, "max_iter": cfg.SOLVER.MAX_ITER, "train_datasets": list(cfg.DATASETS.TRAIN)}, indent=1)


def _previous_seed(output_dir: str) -> int:
    """``SEED`` of the config this folder's last run wrote, or -1."""
    path = os.path.join(output_dir, "config.yaml")
    if not os.path.isfile(path):
        return -1
    with open(path, encoding="utf-8") as f:
        seed = (yaml.safe_load(f) or {}).get("SEED", -1)
    return seed if isinstance(seed, int) else -1


def run_detectron2_task(
    spec: Detectron2TaskSpec,
    backbone_pkl: str,
    output_dir: str,
    datasets_root: str,
    opts: Sequence[str] = (),
    num_gpus: int = 1,
    resume: bool = True,
    arch: str = "resnet50",
) -> Dict[str, Any]:
    """Fine-tune and evaluate; returns ``{"metrics": {"bbox/AP": ...}, "max_iter": ...}``.

    The whole log of the run (alpseg's and detectron2's) goes to ``output_dir/log.txt``."""
    use_gpu = torch.cuda.is_available() and num_gpus > 0
    cfg = build_task_cfg(spec, backbone_pkl, output_dir, opts, use_gpu=use_gpu, arch=arch)
    missing = missing_dataset_paths(cfg, spec, datasets_root)
    if missing:
        raise FileNotFoundError("dataset files missing: " + ", ".join(missing))
    os.makedirs(output_dir, exist_ok=True)
    results_path = os.path.join(output_dir, RESULTS_FILE)
    if os.path.exists(results_path):
        os.remove(results_path)
    if cfg.SEED < 0:  # the sampler's seed, kept in config.yaml so that a resumed run draws the same batches
        previous = _previous_seed(output_dir) if resume else -1
        cfg.SEED = previous if previous >= 0 else int(np.random.SeedSequence().generate_state(1)[0] % 2**31)
    atomic_write(os.path.join(output_dir, "config.yaml"), cfg.dump())
    workers = min(num_gpus, torch.cuda.device_count()) if use_gpu else 1
    with task_log(os.path.join(output_dir, "log.txt")):
        launch(_train_worker, workers if use_gpu else 0, dist_url="auto", args=(cfg, spec, datasets_root, resume))
    with open(results_path, encoding="utf-8") as f:
        out = json.load(f)
    return {"metrics": flatten_results(out["results"]), "max_iter": out["max_iter"],
            "train_datasets": out["train_datasets"]}
