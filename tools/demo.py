#!/usr/bin/env python
"""Segment images with any vocabulary given on the command line.

    python tools/demo.py --config-file output/demo/fcos_mo_alp/config.yaml \
        --weights output/demo/fcos_mo_alp/model_final.pth \
        --input img1.jpg img2.jpg --vocabulary "dolphin,starfish,apple" --output out/

    python tools/demo.py --onnx exported/model.onnx --input img1.jpg      # an export (docs/export.md)

--vocabulary is a comma list, a file with one phrase a line, or a registered dataset name. Phrases
must be in the model's phrase bank (MODEL.OPEN_VOCAB.EMBEDDINGS) unless the config sets
MODEL.OPEN_VOCAB.ENCODE_MISSING True (then they are encoded with the bank's text encoder). With
--onnx the vocabulary baked in at export is used; another one needs a model exported with
--embeddings-input (its phrases are looked up in --phrase-bank, default: the bank the export's
sidecar names).

Each drawn image is printed as it is written (as ``a.png``; inputs with the same name get distinct
outputs, see alpseg.demo.predictor.output_names). Directories, unreadable files and images smaller
than 8 px a side are skipped, counted and reported; the run goes on. Exit status: 0 when at least
one image was written, 1 when none was, 2 for bad arguments.
"""
import argparse
import glob
import sys
from collections import Counter

import alpseg  # noqa: F401  (registers models and datasets)
from alpseg.utils.cli import add_common_arguments, setup_tool


def _predictor(args):
    if args.onnx:
        from alpseg.export import OnnxPredictor

        if not (args.vocabulary and args.phrase_bank):  # the export's vocabulary, or its sidecar's phrase bank
            return OnnxPredictor(args.onnx, args.vocabulary)
        from alpseg.text.bank import PhraseBank
        from alpseg.text.vocabulary import build_vocabulary

        phrases = build_vocabulary(args.vocabulary)
        return OnnxPredictor(args.onnx, phrases, PhraseBank.load(args.phrase_bank).lookup(phrases).numpy())

    from alpseg.config import load_config
    from alpseg.demo.predictor import OpenVocabPredictor

    cfg = load_config(args.config_file, args.opts + ["MODEL.WEIGHTS", args.weights])
    import torch

    if not torch.cuda.is_available():
        cfg.MODEL.DEVICE = "cpu"
    return OpenVocabPredictor(cfg, args.vocabulary)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", help="model config (not with --onnx)")
    p.add_argument("--weights", help="model checkpoint (.pth / .pkl; not with --onnx)")
    p.add_argument("--onnx", help="an ONNX export of tools/export_model.py (its .json sidecar beside it)")
    p.add_argument("--phrase-bank", help="with --onnx and --vocabulary: the phrase bank (.npz) to embed them "
                   "(default: the one recorded in the export's sidecar)")
    p.add_argument("--input", nargs="+", required=True, help="images or glob patterns")
    p.add_argument("--vocabulary", help="comma list, phrase file, or dataset name (with --onnx: optional)")
    p.add_argument("--output", default="output/demo_predictions", help="folder for the drawn images")
    p.add_argument("--score-thresh", type=float, default=0.3, help="draw detections above this score")
    add_common_arguments(p)
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = p.parse_args(argv)
    setup_tool(args)
    if args.onnx and (args.config_file or args.weights):
        p.error("--onnx runs an export: leave out --config-file and --weights")
    if not args.onnx and not (args.config_file and args.weights and args.vocabulary):
        p.error("--config-file, --weights and --vocabulary are required (or --onnx MODEL)")

    images = sorted({f for pattern in args.input for f in (glob.glob(pattern) or [pattern])})
    try:
        predictor = _predictor(args)
    except (ValueError, KeyError, FileNotFoundError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    written, skipped = 0, Counter()
    for result in predictor.run_images(images, args.output, args.score_thresh):
        if result.output:
            written += 1
            print(result.output, flush=True)
        else:
            skipped[result.skipped] += 1
            print(f"skipped {result.input}: {result.detail}", file=sys.stderr, flush=True)
    summary = ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items()))
    print(f"[demo] wrote {written} of {len(images)} images" + (f"; skipped {summary}" if skipped else ""),
          file=sys.stderr)
    if not written:
        print(f"error: no image was written (inputs: {' '.join(args.input)})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
