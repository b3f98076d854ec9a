#!/usr/bin/env python
"""Segment images with any vocabulary given on the command line.

    python tools/demo.py --config-file output/demo/fcos_mo_alp/config.yaml \
        --weights output/demo/fcos_mo_alp/model_final.pth \
        --input img1.jpg img2.jpg --vocabulary "dolphin,starfish,apple" --output out/

--vocabulary is a comma list, a file with one phrase a line, or a registered dataset name. Phrases
must be in the model's phrase bank (MODEL.OPEN_VOCAB.EMBEDDINGS) unless the config sets
MODEL.OPEN_VOCAB.ENCODE_MISSING True (then they are encoded with the bank's text encoder).
"""
import argparse
import glob
import sys

import alpseg  # noqa: F401  (registers models and datasets)
from alpseg.config import load_config
from alpseg.demo.predictor import OpenVocabPredictor


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True)
    p.add_argument("--weights", required=True, help="model checkpoint (.pth / .pkl)")
    p.add_argument("--input", nargs="+", required=True, help="images or glob patterns")
    p.add_argument("--vocabulary", required=True, help="comma list, phrase file, or dataset name")
    p.add_argument("--output", default="output/demo_predictions", help="folder for the drawn images")
    p.add_argument("--score-thresh", type=float, default=0.3, help="draw detections above this score")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = p.parse_args(argv)

    images = sorted({f for pattern in args.input for f in (glob.glob(pattern) or [pattern])})
    cfg = load_config(args.config_file, args.opts + ["MODEL.WEIGHTS", args.weights])
    import torch

    if not torch.cuda.is_available():
        cfg.MODEL.DEVICE = "cpu"
    predictor = OpenVocabPredictor(cfg, args.vocabulary)
    for path in predictor.visualize_many(images, args.output, args.score_thresh):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
