#!/usr/bin/env python
"""Miniature ablations: train each variant of a documented judgement with N seeds, print mean +- std.

    python tools/ablate.py --output output/ablate --seeds 0 1 2 --iterations 200
    python tools/ablate.py --ablations fcos_fg_bias coco_merge --seeds 0 1 2

Runs the real tools (curation, embedding, tools/train_net.py) on the miniature world of the demo;
finished runs are reused. The table goes to stdout and OUTPUT/ablations.md, every run's numbers to
OUTPUT/ablations.json. See docs/fcos_mo.md and docs/mask_rcnn_star.md for the measured tables.
"""
import argparse
import logging
import sys

from alpseg.demo.ablation import ABLATIONS, format_ablation_table, run_ablations
from alpseg.utils.cli import add_common_arguments, setup_tool


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default="output/ablate", help="folder for data, runs, logs and the tables")
    p.add_argument("--ablations", nargs="+", default=list(ABLATIONS), choices=sorted(ABLATIONS),
                   help="which judgements (default: all)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds per variant")
    p.add_argument("--iterations", type=int, default=200, help="SOLVER.MAX_ITER of every run")
    p.add_argument("--parallel", type=int, default=2, help="runs trained at the same time (1 CPU thread each)")
    add_common_arguments(p)
    args = p.parse_args(argv)
    logger = setup_tool(args)
    try:
        results = run_ablations(args.output, args.ablations, args.seeds, args.iterations, args.parallel,
                                progress=not args.no_progress)
    except (RuntimeError, ValueError, KeyError) as e:
        logger.error("%s", e)
        return 1
    print(format_ablation_table(results), flush=True)
    return 0


if __name__ == "__main__":
    logging.captureWarnings(True)
    sys.exit(main())
