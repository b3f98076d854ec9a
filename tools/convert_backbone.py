#!/usr/bin/env python
"""Convert a ResNet checkpoint (torchvision, MoCo, VirTex, ... layouts) to a detectron2 pkl.

    tools/convert_backbone.py IN_CKPT OUT.pkl [--prefix P] [--arch resnet50] [--trust-pickle] [--report R.json]

Prints where every key went. Exits 1 (and writes nothing) if a backbone weight is missing,
mis-shaped or holds NaN / Inf, or if the file cannot be read as a checkpoint (one-line error).
"""
import argparse
import sys

from alpseg.transfer.checkpoints import BackboneLoadError, convert_checkpoint, save_detectron2_pkl
from alpseg.utils.cli import add_common_arguments, setup_tool
from alpseg.utils.io import write_json


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="checkpoint file (.pth / .pth.tar / .pkl)")
    parser.add_argument("output", help="detectron2 pkl to write")
    parser.add_argument("--arch", default="resnet50", help="torchvision architecture name (default resnet50)")
    parser.add_argument("--prefix", default=None, help="backbone key prefix (default: detected)")
    parser.add_argument("--trust-pickle", action="store_true", help="allow arbitrary pickled objects in the file")
    parser.add_argument("--report", default=None, help="also write the full conversion report as JSON")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    setup_tool(args)  # logs e.g. which of several ResNets in the file was chosen

    try:
        weights, report = convert_checkpoint(args.input, arch=args.arch, prefix=args.prefix,
                                             trust_pickle=args.trust_pickle, strict=False)
    except (BackboneLoadError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(report.summary())
    if args.report:
        write_json(args.report, report.to_dict(), indent=1)
    if not report.ok:
        print(f"error: backbone not fully loaded from {args.input}; {args.output} not written", file=sys.stderr)
        return 1
    save_detectron2_pkl(weights, args.output)
    print(f"wrote {args.output} ({len(weights)} tensors, detectron2 names, matching_heuristics=True)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
