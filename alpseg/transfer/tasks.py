"""The transfer tasks: one dataclass per kind of protocol, one registry of named instances.

A task knows the files it needs under the datasets root (:meth:`TransferTask.required`), the
settings that define its result (:meth:`TransferTask.settings`, recorded with the result and
compared on ``--resume``), how to run (:meth:`TransferTask.run`) and its headline columns.
Per-task overrides (``--set TASK.KEY=VALUE``) are protocol fields of the classification tasks and
config keys of the detectron2 tasks. :mod:`alpseg.transfer.runner` runs a list of them.
"""
from __future__ import annotations

import ast
import dataclasses
import os
from collections import OrderedDict
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from .backbone import ARCH_DEPTHS

__all__ = ["SuiteContext", "TransferTask", "VOC07SVMTask", "ClassificationTask", "Detectron2Task", "TASKS",
           "DEFAULT_TASKS", "register_task", "parse_task_overrides", "check_arch"]


@dataclasses.dataclass
class SuiteContext:
    """What every task gets: the converted backbone and where to read and write."""

    backbone: str  # the checkpoint given by the user
    weights: Dict[str, torch.Tensor]  # detectron2-named trunk tensors
    backbone_pkl: str  # the same, as a detectron2 pkl (for the detectron2 tasks)
    fingerprint: str  # content hash of ``weights``
    output_dir: str
    datasets_root: str
    num_gpus: int = 1
    resume: bool = False
    arch: str = "resnet50"
    d2_opts: Tuple[str, ...] = ()  # KEY VALUE overrides for every detectron2 task
    overrides: Dict[str, Dict[str, Any]] = dataclasses.field(default_factory=dict)  # task -> {field: value}

    def task_overrides(self, task: str) -> Dict[str, Any]:
        return self.overrides.get(task, {})


def check_arch(arch: str) -> str:
    """``arch`` if every task can build it (a detectron2 bottleneck ResNet), else a one-line error."""
    if arch not in ARCH_DEPTHS:
        raise ValueError(f"--arch {arch!r} is not supported by the transfer tasks (detectron2 bottleneck "
                         f"ResNets); use one of {', '.join(ARCH_DEPTHS)}")
    return arch


def _with_overrides(obj: Any, overrides: Mapping[str, Any], task: str) -> Any:
    names = {f.name for f in dataclasses.fields(obj)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise KeyError(f"{task}: unknown settings {unknown}; known: {sorted(names)}")
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return dataclasses.replace(obj, **fixed)


@dataclasses.dataclass
class TransferTask:
    """One protocol: its name, title and headline columns ``(metric key, column label)``."""

    name: str
    title: str
    columns: Tuple[Tuple[str, str], ...]

    def required(self, datasets_root: str) -> List[str]:
        """Files and folders the task reads under ``datasets_root``."""
        raise NotImplementedError

    def settings(self, ctx: SuiteContext) -> Dict[str, Any]:
        """Everything besides the backbone that decides the result (JSON-able)."""
        raise NotImplementedError

    def run(self, ctx: SuiteContext, output_dir: str, resume: bool) -> Dict[str, Any]:
        """Run in ``output_dir`` (continuing its checkpoints when ``resume``); ``{"metrics": {...}, ...}``."""
        raise NotImplementedError


@dataclasses.dataclass
class VOC07SVMTask(TransferTask):
    """VOC07 per-class linear SVMs on frozen features (:mod:`alpseg.transfer.voc07_svm`)."""

    FILES: ClassVar[Tuple[str, ...]] = ("ImageSets/Main/trainval.txt", "ImageSets/Main/test.txt", "JPEGImages",
                                        "Annotations")
    data_dir: str = "VOC2007"

    def protocol(self, ctx: SuiteContext):
        from .voc07_svm import VOC07SVMSettings

        return _with_overrides(VOC07SVMSettings(), ctx.task_overrides(self.name), self.name)

    def required(self, datasets_root: str) -> List[str]:
        return [os.path.join(datasets_root, self.data_dir, f) for f in self.FILES]

    def settings(self, ctx: SuiteContext) -> Dict[str, Any]:
        return dataclasses.asdict(self.protocol(ctx))

    def run(self, ctx: SuiteContext, output_dir: str, resume: bool) -> Dict[str, Any]:
        from .voc07_svm import run_voc07_svm

        # resumption is by its caches, keyed by the weights and the settings, so ``resume`` changes nothing
        return run_voc07_svm(ctx.weights, os.path.join(ctx.datasets_root, self.data_dir), output_dir,
                             self.protocol(ctx), ctx.arch)


@dataclasses.dataclass
class ClassificationTask(TransferTask):
    """A classification protocol (:mod:`alpseg.transfer.linear_probe`, :mod:`alpseg.transfer.inat`)."""

    data_dir: str = ""  # under the datasets root
    root_arg: str = ""  # the runner's keyword for the data folder
    files: Tuple[str, ...] = ()  # what must exist under ``data_dir``
    default_settings: Callable[[], Any] = None  # () -> ClassificationSettings
    runner: Callable[..., Dict[str, Any]] = None  # run_linear_probe / run_inat (weights, root, out, ...)

    def protocol(self, ctx: SuiteContext):
        return _with_overrides(self.default_settings(), ctx.task_overrides(self.name), self.name)

    def required(self, datasets_root: str) -> List[str]:
        return [os.path.join(datasets_root, self.data_dir, f) for f in self.files]

    def settings(self, ctx: SuiteContext) -> Dict[str, Any]:
        return dataclasses.asdict(self.protocol(ctx))

    def run(self, ctx: SuiteContext, output_dir: str, resume: bool) -> Dict[str, Any]:
        from .launching import launch_and_collect

        kwargs = {"weights": ctx.weights, self.root_arg: os.path.join(ctx.datasets_root, self.data_dir)}
        kwargs.update(output_dir=output_dir, settings=self.protocol(ctx), arch=ctx.arch, resume=resume)
        return launch_and_collect(self.runner, kwargs, ctx.num_gpus, os.path.join(output_dir, "launch_result.json"))


@dataclasses.dataclass
class Detectron2Task(TransferTask):
    """Fine-tuning with a config of ``configs/transfer/`` (:mod:`alpseg.transfer.finetune`)."""

    config: str = ""
    percent: Optional[float] = None  # LocTex limited data: train on this % of the training set

    def spec(self):
        from .finetune import Detectron2TaskSpec

        return Detectron2TaskSpec(self.config, subset_percent=self.percent, subset_seed=0)

    def opts(self, ctx: SuiteContext) -> List[str]:
        own = [x for k, v in ctx.task_overrides(self.name).items() for x in (k, str(v))]
        return list(ctx.d2_opts) + own

    def required(self, datasets_root: str) -> List[str]:
        from .builtin_datasets import required_paths
        from .finetune import build_task_cfg, dataset_names

        spec = self.spec()
        cfg = build_task_cfg(spec, "", "", use_gpu=False)
        return [p for name in dataset_names(cfg, spec) for p in required_paths(name, datasets_root)]

    def settings(self, ctx: SuiteContext) -> Dict[str, Any]:
        from .finetune import build_task_cfg

        opts = self.opts(ctx)
        try:  # a misspelt key fails here, before any task runs, not hours later inside this one
            build_task_cfg(self.spec(), "", "", opts, use_gpu=False, arch=ctx.arch)
        except KeyError as e:
            raise KeyError(f"{self.name}: {e.args[0] if e.args else e}") from e
        return {"config": self.config, "percent": self.percent, "opts": opts}

    def run(self, ctx: SuiteContext, output_dir: str, resume: bool) -> Dict[str, Any]:
        from .finetune import run_detectron2_task

        return run_detectron2_task(self.spec(), ctx.backbone_pkl, output_dir, ctx.datasets_root, self.opts(ctx),
                                   num_gpus=ctx.num_gpus, resume=resume, arch=ctx.arch)


TASKS: "OrderedDict[str, TransferTask]" = OrderedDict()


def register_task(task: TransferTask) -> TransferTask:
    if task.name in TASKS:
        raise KeyError(f"transfer task {task.name!r} is already registered")
    TASKS[task.name] = task
    return task


def _register_builtin() -> None:
    from .inat import inat_settings, run_inat
    from .linear_probe import linear_probe_settings, run_linear_probe

    box = (("bbox/AP", "APbb"), ("bbox/AP50", "APbb50"), ("bbox/AP75", "APbb75"))
    mask = (("segm/AP", "APmk"), ("segm/AP50", "APmk50"), ("segm/AP75", "APmk75"))

    def d2(name: str, title: str, config: str, columns, label: str, percent: Optional[float] = None) -> None:
        cols = tuple((k, f"{label} {c}") for k, c in columns)
        register_task(Detectron2Task(name, title, cols, config=config, percent=percent))

    register_task(VOC07SVMTask("voc07_svm", "VOC07 SVM", (("mAP", "VOC07 mAP"),)))
    register_task(ClassificationTask("in1k_linear", "ImageNet-1k linear", (("top1", "IN-1k top-1"),),
                                     data_dir="imagenet", root_arg="imagenet_root", files=("train", "val"),
                                     default_settings=linear_probe_settings, runner=run_linear_probe))
    d2("coco_instance", "COCO Mask R-CNN R50-FPN 2x", "coco_mask_rcnn_R_50_FPN_2x.yaml", box + mask, "COCO")
    d2("lvis_instance", "LVIS v1 Mask R-CNN R50-FPN 2x", "lvis_v1_mask_rcnn_R_50_FPN_2x.yaml", mask, "LVIS")
    d2("lvis_instance_frozenbn", "LVIS v1 Mask R-CNN R50-FPN 2x, frozen BN (IN-sup protocol)",
       "lvis_v1_mask_rcnn_R_50_FPN_2x_frozenbn.yaml", mask, "LVIS-FrozenBN")
    d2("voc_detection", "VOC07+12 Faster R-CNN R50-C4 24K", "voc0712_faster_rcnn_R_50_C4_24k.yaml", box, "VOC")
    register_task(ClassificationTask("inat18", "iNat 2018 fine-tuning", (("top1", "iNat18 top-1"),),
                                     data_dir="inat2018", root_arg="inat_root",
                                     files=("train2018.json", "val2018.json"),
                                     default_settings=inat_settings, runner=run_inat))
    for p in (10, 20, 50, 100):
        d2(f"coco_limited_{p}", f"LocTex limited-data COCO {p}% (Mask R-CNN R50-C4)",
           "coco_limited_mask_rcnn_R_50_C4_2x.yaml", (box[0], mask[0]), f"COCO-{p}%", percent=float(p))


_register_builtin()

#: What ``--tasks`` defaults to: every protocol once (the frozen-BN LVIS variant is for IN-sup).
DEFAULT_TASKS: Tuple[str, ...] = tuple(t for t in TASKS if t != "lvis_instance_frozenbn")


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_task_overrides(items: Sequence[str]) -> Dict[str, Dict[str, Any]]:
    """``["voc07_svm.crop=56", "coco_instance.SOLVER.MAX_ITER=2"]`` -> ``{task: {key: value}}``."""
    out: Dict[str, Dict[str, Any]] = {}
    for item in items:
        head, sep, value = item.partition("=")
        task, dot, key = head.partition(".")
        if not sep or not dot or not key:
            raise ValueError(f"override {item!r} is not TASK.KEY=VALUE")
        if task not in TASKS:
            raise KeyError(f"override {item!r}: unknown task {task!r}; tasks: {', '.join(TASKS)}")
        out.setdefault(task, {})[key] = _literal(value)
    return out
