"""The alpseg trainer: detectron2's DefaultTrainer with alpseg loaders and metadata-driven evaluators.

Everything a researcher expects from detectron2 stays: checkpoints (``--resume`` continues at the same
iteration with the same LR schedule), TensorBoard / JSON / console writers, periodic evaluation, AMP on
GPU, multi-GPU launch. What alpseg adds:

* the training loader is :func:`alpseg.data.build.build_alpseg_train_loader` (ALP-aware mapper, LSJ,
  alternating multi-dataset batches);
* the evaluator of each test set is chosen from its metadata ``evaluator_type``, and an
  open-vocabulary model classifies each test set against that set's own vocabulary;
* after ``--resume`` the loader continues the interrupted run's batch sequence;
* runs on CPU: AMP (CUDA-only in detectron2) is switched off with a warning when there is no GPU;
* ``SOLVER.CLIP_GRADIENTS.CLIP_TYPE: "full_model"`` clips the norm of *all* gradients together
  (detectron2 itself only clips each parameter tensor on its own), see :func:`clip_full_model_gradients`.
"""
from __future__ import annotations

import logging
import os
from collections import OrderedDict
from typing import Optional

import torch
from detectron2.data import MetadataCatalog
from detectron2.engine import DefaultTrainer
from detectron2.evaluation import DatasetEvaluator
from torch.nn.parallel import DistributedDataParallel

logger = logging.getLogger(__name__)

__all__ = ["AlpsegTrainer", "build_evaluator", "clip_full_model_gradients", "FULL_MODEL_CLIP"]

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


def build_evaluator(cfg, dataset_name: str, output_folder: Optional[str] = None) -> DatasetEvaluator:
    """The evaluator named by ``MetadataCatalog.get(dataset_name).evaluator_type``."""
    output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
    meta = MetadataCatalog.get(dataset_name)
    kind = getattr(meta, "evaluator_type", None)
    if kind == "oid_challenge":
        from alpseg.evaluation.oid_evaluator import OIDChallengeEvaluator

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
    """DefaultTrainer with alpseg's data path and evaluators."""

    def __init__(self, cfg):
        if cfg.SOLVER.AMP.ENABLED and not torch.cuda.is_available():
            logger.warning("SOLVER.AMP.ENABLED is set but CUDA is unavailable: training in fp32 on CPU.")
            cfg = cfg.clone()
            cfg.defrost()
            cfg.SOLVER.AMP.ENABLED = False
            cfg.freeze()
        super().__init__(cfg)

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

