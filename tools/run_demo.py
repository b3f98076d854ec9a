#!/usr/bin/env python
"""Run the embedded default: a miniature Table 3 (AP50 base / novel per model) on CPU.

    python tools/run_demo.py --output output/demo        # what `make demo` runs

See docs/demo.md for what it does and what the numbers mean.
"""
import argparse
import os
import sys

from alpseg.demo.table3 import run_table3


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default="output/demo", help="folder for data, models, logs and results")
    p.add_argument("--seed", type=int, default=0, help="seed of the miniature world and of training")
    p.add_argument("--parallel", type=int, default=3, help="models trained at the same time (1 CPU thread each)")
    p.add_argument("--iterations", type=int, default=0, help="override SOLVER.MAX_ITER of the demo configs")
    args = p.parse_args(argv)
    run_table3(args.output, seed=args.seed, parallel=args.parallel, iterations=args.iterations)
    print(f"[demo] look at it in the browser: {os.path.relpath(sys.executable)} tools/app.py --demo-dir {args.output}",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
