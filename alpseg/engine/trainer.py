"""The alpseg trainer: detectron2's DefaultTrainer with alpseg loaders and metadata-driven evaluators.

Everything a researcher expects from detectron2 stays: checkpoints (``--resume`` continues at the same
iteration with the same LR schedule), TensorBoard / JSON / console writers, periodic evaluation, AMP on
GPU, multi-GPU launch. What alpseg adds:

* the training loader is :func:`alpseg.data.build.build_alpseg_train_loader` (ALP-aware mapper, LSJ,
  alternating multi-dataset batches);
* the evaluator of each test set is chosen from its metadata ``evaluator_type``, and an
  open-vocabulary model classifies each test set against that set's own vocabulary;
* after ``--resume`` the loader continues the interrupted run's batch sequence, and the run is
  bit-identical to an uninterrupted one (:class:`TrainingStateHook`: RNG states of every process and
  the metric histories are in each checkpoint; FCOS-MO's EMA normalisers are model buffers; the data
  draws are a function of the iteration, :mod:`alpseg.data.build`);
* checkpoints are saved atomically and loaded under a matching policy (:mod:`.checkpoint`);
* the phrase bank is checked to hold every training phrase before iteration 0;
* runs on CPU, also in several processes (DDP over gloo); AMP (CUDA-only in detectron2) is switched
  off with a warning when there is no GPU;
* ``SOLVER.CLIP_GRADIENTS.CLIP_TYPE: "full_model"`` clips the norm of *all* gradients together
  (detectron2 itself only clips each parameter tensor on its own), see :func:`clip_full_model_gradients`.
"""
from __future__ import annotations

import logging
import os
import random
import weakref
from collections import OrderedDict
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from detectron2.data import MetadataCatalog
from detectron2.engine import DefaultTrainer, HookBase, hooks
from detectron2.engine.train_loop import AMPTrainer, SimpleTrainer, TrainerBase
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger
from fvcore.common.history_buffer import HistoryBuffer
from torch.nn.parallel import DistributedDataParallel

from .checkpoint import AlpsegCheckpointer

logger = logging.getLogger(__name__)

__all__ = ["AlpsegTrainer", "build_evaluator", "TrainingStateHook", "PhraseCoverageError", "rng_states",
           "set_rng_states", "sync_bn_for_cpu", "GlooSyncBatchNorm", "clip_full_model_gradients", "FULL_MODEL_CLIP"]

#: SOLVER.CLIP_GRADIENTS.CLIP_TYPE value for clipping the norm of all gradients together
FULL_MODEL_CLIP = "full_model"


def clip_full_model_gradients(optimizer: torch.optim.Optimizer, max_norm: float,
                              norm_type: float = 2.0) -> torch.optim.Optimizer:
    """Make ``optimizer.step()`` first scale all gradients so that their joint norm is <= ``max_norm``.

    Unlike per-tensor clipping, the direction of the update is kept. The norm before clipping is
    logged as ``grad_norm`` when an event storage is active. The optimizer's class is swapped for a
    subclass in place, so LR schedulers already attached keep working.
    """
    if max_norm <= 0:
        raise ValueError(f"SOLVER.CLIP_GRADIENTS.CLIP_VALUE must be > 0 for {FULL_MODEL_CLIP!r} clipping, got {max_norm}")
    base = type(optimizer)

    def step(self, closure=None):
        params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        total = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type)
        try:
            from detectron2.utils.events import get_event_storage

            get_event_storage().put_scalar("grad_norm", float(total))
        except AssertionError:  # no storage outside a trainer
            pass
        return base.step(self, closure)

    optimizer.__class__ = type(base.__name__ + "WithFullModelGradientClipping", (base,), {"step": step})
    return optimizer


HISTORY_KEPT = 200  # metric values per name kept in a checkpoint (writers smooth over the last 20)


class GlooSyncBatchNorm(torch.nn.BatchNorm2d):
    """Batch norm whose statistics are those of the whole batch over all processes, on any device.

    torch's ``SyncBatchNorm`` needs CUDA; detectron2's ``NaiveSyncBatchNorm`` computes the variance as
    ``E[x^2] - E[x]^2``, whose float32 cancellation moved BN-parameter gradients by ~0.4% against one
    process holding the whole batch (measured on the miniature FCOS-MO). This one all-reduces the sum
    and count, then the sum of squared deviations from the global mean (two passes, as BatchNorm),
    both differentiable. A process with an empty batch contributes nothing. Running statistics follow
    BatchNorm (unbiased running variance), so they also equal the one-process run's.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if comm.get_world_size() == 1 or not self.training:
            return super().forward(x)
        from detectron2.layers.batch_norm import differentiable_all_reduce

        channels = x.shape[1]
        shape = (1, channels) + (1,) * (x.dim() - 2)
        dims = [0] + list(range(2, x.dim()))
        count = x.new_tensor([x.numel() // channels if x.numel() else 0])
        totals = differentiable_all_reduce(torch.cat([x.sum(dim=dims), count]))
        n = totals[-1].detach().clamp(min=1)
        mean = totals[:channels] / n
        var = differentiable_all_reduce(((x - mean.reshape(shape)) ** 2).sum(dim=dims)) / n
        y = (x - mean.reshape(shape)) * torch.rsqrt(var + self.eps).reshape(shape)
        if self.affine:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        if self.track_running_stats and totals[-1].item() > 0:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked + 1)
                unbiased = var * (n / (n - 1).clamp(min=1))
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased.detach(), alpha=m)
                self.num_batches_tracked.add_(1)
        return y


def _gloo_sync_bn(bn: torch.nn.SyncBatchNorm) -> torch.nn.Module:
    new = GlooSyncBatchNorm(bn.num_features, eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
                            track_running_stats=bn.track_running_stats)
    new.load_state_dict(bn.state_dict())
    device = next(iter(bn.buffers()), torch.empty(0)).device
    return new.to(device).train(bn.training)


def sync_bn_for_cpu(model: torch.nn.Module) -> int:
    """Replace every ``nn.SyncBatchNorm`` of ``model`` (CUDA only) by :class:`GlooSyncBatchNorm`, keeping
    parameter and buffer names. Returns the number replaced."""
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.SyncBatchNorm):
                setattr(parent, name, _gloo_sync_bn(child))
                replaced += 1
    return replaced


class PhraseCoverageError(ValueError):
    """The phrase bank lacks phrases of the training set (raised before iteration 0)."""


def rng_states() -> Dict[str, Any]:
    """This process's python / numpy / torch (and CUDA) RNG states, in types that torch.load's
    ``weights_only`` mode accepts (tensors, numbers, strings, tuples, lists, dicts)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(),
             "numpy": (str(kind), torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_states(state: Dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class TrainingStateHook(HookBase):
    """Puts the training state that detectron2 leaves out into every checkpoint, and back on resume.

    Before each checkpoint (same rule as ``PeriodicCheckpointer``) all processes gather their RNG
    states (collective: the hook runs on every rank, before the checkpointer); the checkpoint keeps
    them with the last :data:`HISTORY_KEPT` values of every logged metric. On resume each process
    restores its own RNG state and the main process its metric histories, just before iteration
    ``start_iter`` runs, so the continued run draws, trains and logs what the uninterrupted one did.
    A checkpoint from another number of processes restores no RNG state (a warning says so).
    """

    def __init__(self, period: int, max_iter: int):
        self.period = int(period)
        self.max_iter = int(max_iter)
        self._snapshot: Optional[Dict[str, Any]] = None
        self._pending: Optional[Dict[str, Any]] = None

    def _saves_after(self, iteration: int) -> bool:
        return (iteration + 1) % self.period == 0 or iteration >= self.max_iter - 1

    def after_step(self):
        if not self._saves_after(self.trainer.iter):
            return
        states = comm.all_gather(rng_states())
        history = {}
        if comm.is_main_process():
            storage = self.trainer.storage
            for name, buf in storage.histories().items():
                values = [(float(v), int(i)) for v, i in buf.values()[-HISTORY_KEPT:]]
                history[name] = (values, int(buf._count), float(buf.global_avg()))
            hints = {k: bool(v) for k, v in storage.smoothing_hints().items()}
        else:
            hints = {}
        self._snapshot = {"rng": states, "history": history, "smoothing_hints": hints}

    def state_dict(self):
        return dict(self._snapshot) if self._snapshot else {}

    def load_state_dict(self, state_dict):
        self._pending = state_dict

    def before_train(self):
        state, self._pending = self._pending, None
        if not state:
            return
        states: List[Dict[str, Any]] = state.get("rng", [])
        if len(states) == comm.get_world_size():
            set_rng_states(states[comm.get_rank()])
        else:
            logger.warning("the checkpoint holds RNG states of %d processes, this run has %d: random draws after "
                           "resume differ from the interrupted run's", len(states), comm.get_world_size())
        if comm.is_main_process():
            storage = self.trainer.storage
            for name, (values, count, global_avg) in state.get("history", {}).items():
                buf = HistoryBuffer()
                # fvcore's HistoryBuffer has no public setter: rebuild its (value, iteration) list and totals
                buf._data, buf._count, buf._global_avg = [tuple(v) for v in values], count, global_avg
                storage._history[name] = buf
            storage._smoothing_hints.update(state.get("smoothing_hints", {}))


def build_evaluator(cfg, dataset_name: str, output_folder: Optional[str] = None) -> DatasetEvaluator:
    """The evaluator named by ``MetadataCatalog.get(dataset_name).evaluator_type``."""
    output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
    meta = MetadataCatalog.get(dataset_name)
    kind = getattr(meta, "evaluator_type", None)
    if kind == "oid_challenge":
        from alpseg.evaluation.oid.evaluator import OIDChallengeEvaluator

        # from the config: the metric's keys and the test vocabulary the model classifies against
        return OIDChallengeEvaluator(cfg, dataset_name, output_dir=output_folder)
    # explicit tasks: detectron2 infers them from the predictions, and an empty set would drop "segm"
    coco_tasks = ("bbox", "segm") if cfg.MODEL.MASK_ON else ("bbox",)
    if kind == "coco_base_novel":
        from alpseg.evaluation.base_novel import COCOBaseNovelEvaluator

        return COCOBaseNovelEvaluator(dataset_name, tasks=coco_tasks, output_dir=output_folder)
    if kind == "coco":
        from detectron2.evaluation import COCOEvaluator

        return COCOEvaluator(dataset_name, tasks=coco_tasks, output_dir=output_folder)
    if kind == "lvis":
        from detectron2.evaluation import LVISEvaluator

        return LVISEvaluator(dataset_name, output_dir=output_folder)
    if kind == "pascal_voc":
        from detectron2.evaluation import PascalVOCDetectionEvaluator

        return PascalVOCDetectionEvaluator(dataset_name)
    raise ValueError(
        f"dataset {dataset_name!r} has evaluator_type={kind!r}; alpseg knows 'oid_challenge', "
        "'coco_base_novel', 'coco', 'lvis' and 'pascal_voc'. Register the dataset with one of them."
    )


class AlpsegTrainer(DefaultTrainer):
    """DefaultTrainer with alpseg's data path, evaluators, checkpointer and training-state hook."""

    def __init__(self, cfg):
        if cfg.SOLVER.AMP.ENABLED and not torch.cuda.is_available():
            logger.warning("SOLVER.AMP.ENABLED is set but CUDA is unavailable: training in fp32 on CPU.")
            cfg = cfg.clone()
            cfg.defrost()
            cfg.SOLVER.AMP.ENABLED = False
            cfg.freeze()
        # DefaultTrainer.__init__, with DDP that also runs on CPU and alpseg's checkpointer
        TrainerBase.__init__(self)
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        self.check_phrase_coverage(cfg, model, getattr(data_loader, "phrases", None))
        if comm.get_world_size() > 1:
            on_cpu = torch.device(cfg.MODEL.DEVICE).type == "cpu"
            model = DistributedDataParallel(model, device_ids=None if on_cpu else [comm.get_local_rank()],
                                            broadcast_buffers=False)
        self._trainer = (AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer)(model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = AlpsegCheckpointer.from_config(cfg, model, trainer=weakref.proxy(self))
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    @classmethod
    def build_model(cls, cfg):
        """detectron2's model; under several CPU processes its SyncBN layers become NaiveSyncBatchNorm
        (torch's SyncBatchNorm needs CUDA), with a logged notice."""
        model = super().build_model(cfg)
        if comm.get_world_size() > 1 and torch.device(cfg.MODEL.DEVICE).type == "cpu":
            n = sync_bn_for_cpu(model)
            if n:
                logger.warning("%d CPU processes: %d SyncBatchNorm layers (CUDA only) replaced by GlooSyncBatchNorm "
                               "(batch statistics all-reduced over gloo)", comm.get_world_size(), n)
        return model

    @staticmethod
    def check_phrase_coverage(cfg, model, phrases: Optional[Dict[str, List[str]]]) -> None:
        """Fail before iteration 0 when the phrase bank lacks a phrase the training set can draw.

        ``phrases``: the loader's ``{"boxes": [...], "alps": [...]}`` (non-ALP annotation phrases; ALP
        and image-level phrases, which a Mask R-CNN* with ``ALP_SUPERVISION none`` never looks up).
        """
        core = model.module if isinstance(model, DistributedDataParallel) else model
        if phrases is None or not hasattr(core, "phrase_bank"):
            return
        needed = list(phrases["boxes"])
        if getattr(core, "alp_supervision", "boxes") != "none":
            needed += phrases["alps"]
        missing = core.phrase_bank.missing(needed)
        if missing:
            shown = ", ".join(repr(p) for p in missing[:5]) + (" ..." if len(missing) > 5 else "")
            bank = cfg.MODEL.OPEN_VOCAB.EMBEDDINGS
            raise PhraseCoverageError(
                f"{bank}: {len(missing)} of {len(set(needed))} training phrases of {list(cfg.DATASETS.TRAIN)} are not "
                f"in the phrase bank ({shown}); add them with tools/embed_phrases.py --phrases <ALPS.json or dataset "
                f"name> --output {bank}")

    def build_hooks(self):
        """detectron2's hooks plus :class:`TrainingStateHook`, placed just before the checkpointer."""
        ret = super().build_hooks()
        state = TrainingStateHook(self.cfg.SOLVER.CHECKPOINT_PERIOD, self.max_iter)
        at = next((i for i, h in enumerate(ret) if isinstance(h, hooks.PeriodicCheckpointer)), None)
        if at is None:  # other ranks have no checkpointer: keep the collective at the same place
            at = next(i for i, h in enumerate(ret) if isinstance(h, hooks.EvalHook))
        ret.insert(at, state)
        return ret

    @classmethod
    def build_optimizer(cls, cfg, model):
        """detectron2's optimizer; with ``CLIP_TYPE: "full_model"`` the joint gradient norm is clipped."""
        clip = cfg.SOLVER.CLIP_GRADIENTS
        if not (clip.ENABLED and clip.CLIP_TYPE == FULL_MODEL_CLIP):
            return super().build_optimizer(cfg, model)
        plain = cfg.clone()
        plain.defrost()
        plain.SOLVER.CLIP_GRADIENTS.ENABLED = False
        return clip_full_model_gradients(super().build_optimizer(plain, model), clip.CLIP_VALUE, clip.NORM_TYPE)

    @classmethod
    def build_train_loader(cls, cfg, start_iter: int = 0):
        from alpseg.data.build import build_alpseg_train_loader

        return build_alpseg_train_loader(cfg, start_iter=start_iter)

    def resume_or_load(self, resume: bool = True):
        super().resume_or_load(resume=resume)
        if self.start_iter > 0:
            # Continue the exact batch sequence of the interrupted run, not a fresh one from batch 0.
            self._trainer.reset_data_loader(lambda: self.build_train_loader(self.cfg, self.start_iter))

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        from alpseg.data.build import build_alpseg_test_loader

        return build_alpseg_test_loader(cfg, dataset_name)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        return build_evaluator(cfg, dataset_name, output_folder)

    @classmethod
    def test(cls, cfg, model, evaluators=None):
        """detectron2's test loop, with an open-vocabulary model switched to each test set's own
        vocabulary before that set is evaluated."""
        core = model.module if isinstance(model, DistributedDataParallel) else model
        if evaluators is not None or not hasattr(core, "use_dataset_vocabulary"):
            return super().test(cfg, model, evaluators)
        results = OrderedDict()
        for name in cfg.DATASETS.TEST:
            core.use_dataset_vocabulary(name)
            one = cfg.clone()
            one.defrost()
            one.DATASETS.TEST = (name,)
            results[name] = super().test(one, model)
        return list(results.values())[0] if len(results) == 1 else results

