#!/usr/bin/env python
"""Run the embedded default: a miniature Table 3 (AP50 base / novel per model, mean ± std over seeds) on CPU.

    python tools/run_demo.py --output output/demo            # what `make demo` runs (FCOS-MO rows, seeds 0,1,2)
    python tools/run_demo.py --output output/demo --full     # what `make demo-full` runs (+ Mask R-CNN* rows)
    python tools/run_demo.py --output output/w64 --models open_vocab,fcos_mo_alp MODEL.ROI_MASK_HEAD.HOURGLASS_WIDTH 64
                                                             # two rows, with a config override for every model

Finished seeds and models are not retrained: run the same command again to continue a killed demo or
to add seeds. Exits 1 when a step fails. See docs/demo.md for what it does and what the numbers mean.
"""
import argparse
import os
import sys

from alpseg.demo.table3 import DEFAULT_SEEDS, FCOS_MODELS, MASK_RCNN_MODELS, run_table3
from alpseg.utils.cli import add_common_arguments, setup_tool


def _names(text: str):
    return [v.strip() for v in text.split(",") if v.strip()]


def _seeds(text: str):
    try:
        return [int(v) for v in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds takes a comma list of integers, got {text!r}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default="output/demo", help="folder for data, models, logs and results")
    p.add_argument("--seeds", type=_seeds, default=list(DEFAULT_SEEDS),
                   help="comma list of seeds; each is a whole experiment: world, ALPs, bank, models (default 0,1,2)")
    p.add_argument("--seed", type=int, default=None, help="run this one seed only (same as --seeds N)")
    p.add_argument("--full", action="store_true", help="also the four Mask R-CNN* rows of Table 3 (make demo-full)")
    p.add_argument("--parallel", type=int, default=3, help="models trained at the same time")
    p.add_argument("--threads", type=int, default=1, help="CPU threads of each model")
    p.add_argument("--iterations", type=int, default=0, help="override SOLVER.MAX_ITER of the demo configs")
    p.add_argument("--models", type=_names, default=None,
                   help=f"comma list of the rows to train ({', '.join([*FCOS_MODELS, *MASK_RCNN_MODELS])}); "
                        "default: the FCOS-MO rows, with --full all of them")
    p.add_argument("opts", nargs=argparse.REMAINDER, default=[],
                   help="KEY VALUE config overrides for every model (part of each run's fingerprint)")
    add_common_arguments(p)
    args = p.parse_args(argv)
    setup_tool(args)
    seeds = [args.seed] if args.seed is not None else args.seeds
    if not seeds:
        p.error("no seeds given")
    if len(args.opts) % 2:
        p.error(f"config overrides come in KEY VALUE pairs, got {args.opts}")
    try:
        run_table3(args.output, seeds=seeds, parallel=args.parallel, iterations=args.iterations, full=args.full,
                   threads=args.threads, models=args.models, extra_opts=args.opts, progress=not args.no_progress)
    except (RuntimeError, ValueError) as e:
        print(f"[demo] failed: {e}", file=sys.stderr)
        return 1
    print(f"[demo] look at it in the browser: {os.path.relpath(sys.executable)} tools/app.py --demo-dir {args.output}",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
