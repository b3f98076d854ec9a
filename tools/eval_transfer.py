#!/usr/bin/env python
"""Evaluate a pretrained ResNet-50 backbone by downstream transfer (VirTex / LocTex protocols).

    tools/eval_transfer.py --backbone CKPT [--tasks voc07_svm,coco_instance,...] [--output DIR]
        [--num-gpus N] [--resume] [--datasets-root DIR] [--set TASK.KEY=VALUE ...] [KEY VALUE ...]

Tasks (default: all but lvis_instance_frozenbn): see --list-tasks. Datasets are read under
--datasets-root (default $DETECTRON2_DATASETS or ./datasets); a task whose data is missing is
reported with the expected paths and skipped. Trailing KEY VALUE pairs override the config of every
detectron2 task; --set TASK.KEY=VALUE overrides one task's setting (a config key for detectron2
tasks, a protocol field such as epochs or crop for the others). Writes OUTPUT/results.{md,json}.
"""
import argparse
import sys

from detectron2.utils.logger import setup_logger

from alpseg.transfer.suite import DEFAULT_TASKS, TASKS, parse_task_overrides, run_suite


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", help="checkpoint to evaluate (torchvision, MoCo, VirTex, detectron2 ... layouts)")
    parser.add_argument("--tasks", default=",".join(DEFAULT_TASKS), help="comma-separated task names, or 'all'")
    parser.add_argument("--output", default="output/transfer", help="output directory")
    parser.add_argument("--num-gpus", type=int, default=1, help="GPUs per task (detectron2 launch)")
    parser.add_argument("--resume", action="store_true", help="skip finished tasks, continue unfinished ones")
    parser.add_argument("--datasets-root", default=None, help="dataset root (default $DETECTRON2_DATASETS)")
    parser.add_argument("--arch", default="resnet50", help="torchvision ResNet architecture of the backbone")
    parser.add_argument("--prefix", default=None, help="backbone key prefix in the checkpoint (default: detected)")
    parser.add_argument("--trust-pickle", action="store_true", help="allow arbitrary pickled objects in the checkpoint")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="TASK.KEY=VALUE",
                        help="override one task's setting (repeatable)")
    parser.add_argument("--list-tasks", action="store_true", help="print the tasks and exit")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides for detectron2 tasks")
    args = parser.parse_args(argv)

    if args.list_tasks:
        for name, task in TASKS.items():
            print(f"{name:24s} {task.title}{'' if name in DEFAULT_TASKS else '  (not in the default set)'}")
        return 0
    if not args.backbone:
        parser.error("--backbone is required")
    tasks = list(TASKS) if args.tasks == "all" else [t for t in args.tasks.split(",") if t]
    setup_logger(args.output, name="alpseg")
    setup_logger(args.output, name="detectron2", abbrev_name="d2")
    summary = run_suite(args.backbone, tasks, args.output, args.datasets_root, args.num_gpus, args.resume,
                        arch=args.arch, prefix=args.prefix, trust_pickle=args.trust_pickle, d2_opts=args.opts,
                        overrides=parse_task_overrides(args.overrides))
    print(summary["markdown"])
    for name, st in summary["tasks"].items():
        if st["status"] == "missing_dataset":
            print(f"{name}: skipped, dataset missing: {', '.join(st['missing'])}")
        elif st["status"] == "failed":
            print(f"{name}: FAILED: {st['error']}", file=sys.stderr)
    print(f"results: {args.output}/results.md and results.json")
    return 1 if any(st["status"] == "failed" for st in summary["tasks"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
