#!/usr/bin/env python
"""Evaluate a pretrained ResNet backbone by downstream transfer (VirTex / LocTex protocols).

    tools/eval_transfer.py --backbone CKPT [--tasks voc07_svm,coco_instance,...] [--output DIR]
        [--num-gpus N] [--resume] [--datasets-root DIR] [--set TASK.KEY=VALUE ...] [KEY VALUE ...]
    tools/eval_transfer.py --backbone CKPT --miniature      # every task on miniature data, a few minutes on CPU

Tasks (default: all but lvis_instance_frozenbn): see --list-tasks. Datasets are read under
--datasets-root (default $DETECTRON2_DATASETS or ./datasets); a task whose data is missing is
reported with the expected paths and skipped. KEY VALUE pairs override the config of every
detectron2 task; they may stand anywhere among the flags, after --opts, or after a final --
(detectron2 style). --set TASK.KEY=VALUE overrides one task's setting (a config key for detectron2
tasks, a protocol field such as epochs or crop for the others). Writes OUTPUT/results.{md,json}.
Exit status: 0 when every chosen task with data finished; 1 when a task failed, when no task could
run, or on an error (one line, naming the file and the fix); 2 for a bad command line.
"""
import argparse
import os
import sys


def _parser():
    from alpseg.transfer.tasks import DEFAULT_TASKS
    from alpseg.utils.cli import add_common_arguments

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", help="checkpoint to evaluate (torchvision, MoCo, VirTex, detectron2 ... layouts)")
    p.add_argument("--tasks", default=",".join(DEFAULT_TASKS), help="comma-separated task names, or 'all'")
    p.add_argument("--output", default="output/transfer", help="output directory")
    p.add_argument("--num-gpus", type=int, default=1, help="GPUs per task (detectron2 launch)")
    p.add_argument("--resume", action="store_true", help="skip finished tasks, continue unfinished ones")
    p.add_argument("--datasets-root", default=None, help="dataset root (default $DETECTRON2_DATASETS; "
                   "with --miniature: OUTPUT/miniature_datasets)")
    p.add_argument("--arch", default="resnet50", help="ResNet architecture of the backbone: resnet50/101/152")
    p.add_argument("--prefix", default=None, help="backbone key prefix in the checkpoint (default: detected)")
    p.add_argument("--trust-pickle", action="store_true", help="allow arbitrary pickled objects in the checkpoint")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="TASK.KEY=VALUE",
                   help="override one task's setting (repeatable)")
    p.add_argument("--miniature", action="store_true",
                   help="write the miniature dataset trees and run every chosen task with tiny settings")
    add_common_arguments(p)
    p.add_argument("--list-tasks", action="store_true", help="print the tasks and exit")
    p.add_argument("--opts", dest="opts_flag", nargs="+", action="extend", default=[], metavar="KEY VALUE",
                   help="config overrides for every detectron2 task (also accepted as bare KEY VALUE pairs)")
    p.add_argument("opts", nargs="*", metavar="KEY VALUE", help="config overrides for every detectron2 task")
    return p


def parse_args(argv):
    """Flags anywhere: everything after a lone ``--`` is overrides; the rest is parsed intermixed."""
    argv = list(sys.argv[1:] if argv is None else argv)
    tail = []
    if "--" in argv:
        i = argv.index("--")
        argv, tail = argv[:i], argv[i + 1:]
    parser = _parser()
    args = parser.parse_intermixed_args(argv)
    args.opts = list(args.opts) + list(args.opts_flag) + tail
    if len(args.opts) % 2:
        parser.error(f"config overrides must be KEY VALUE pairs; got {len(args.opts)} items: {args.opts}")
    if not args.list_tasks and not args.backbone:
        parser.error("--backbone is required")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from alpseg.transfer.checkpoints import BackboneLoadError
    from alpseg.transfer.tasks import DEFAULT_TASKS, TASKS, parse_task_overrides

    if args.list_tasks:
        for name, task in TASKS.items():
            print(f"{name:24s} {task.title}{'' if name in DEFAULT_TASKS else '  (not in the default set)'}")
        return 0
    tasks = list(TASKS) if args.tasks == "all" else [t for t in args.tasks.split(",") if t]
    from alpseg.utils.cli import setup_tool

    setup_tool(args, args.output)
    try:
        overrides = parse_task_overrides(args.overrides)
        d2_opts = list(args.opts)
        datasets_root = args.datasets_root
        if args.miniature:
            from alpseg.transfer.miniature import (MINIATURE_D2_OPTS, MINIATURE_OVERRIDES,
                                                   write_miniature_transfer_datasets)

            datasets_root = write_miniature_transfer_datasets(
                datasets_root or os.path.join(args.output, "miniature_datasets"))
            print(f"miniature datasets: {datasets_root}")
            d2_opts = list(MINIATURE_D2_OPTS) + d2_opts  # the user's overrides win
            overrides = {t: {**MINIATURE_OVERRIDES.get(t, {}), **overrides.get(t, {})}
                         for t in set(MINIATURE_OVERRIDES) | set(overrides)}
        from alpseg.transfer.runner import run_suite

        summary = run_suite(args.backbone, tasks, args.output, datasets_root, args.num_gpus, args.resume,
                            arch=args.arch, prefix=args.prefix, trust_pickle=args.trust_pickle, d2_opts=d2_opts,
                            overrides=overrides)
    except (BackboneLoadError, FileNotFoundError, FileExistsError, KeyError, ValueError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {message}", file=sys.stderr)
        return 1
    print(summary["markdown"])
    states = {name: st["status"] for name, st in summary["tasks"].items()}
    for name, st in summary["tasks"].items():
        if st["status"] == "missing_dataset":
            print(f"{name}: skipped, dataset missing: {', '.join(st['missing'])}")
        elif st["status"] == "failed":
            print(f"{name}: FAILED: {st['error']} (log: {os.path.join(args.output, name, 'log.txt')})",
                  file=sys.stderr)
    print(f"results: {args.output}/results.md and results.json")
    if "done" not in states.values():
        print(f"error: no task could run ({', '.join(f'{k}: {v}' for k, v in states.items())}); "
              "check --datasets-root or try --miniature", file=sys.stderr)
        return 1
    return 1 if "failed" in states.values() else 0


if __name__ == "__main__":
    sys.exit(main())
