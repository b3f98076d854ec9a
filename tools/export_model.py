#!/usr/bin/env python
"""Export a trained FCOS-MO or Mask R-CNN* with a vocabulary to ONNX or TorchScript (detectron2's tracing path).

    python tools/export_model.py --config-file output/demo/fcos_mo_alp/config.yaml \
        --weights output/demo/fcos_mo_alp/model_final.pth --vocabulary "dolphin,starfish,apple" \
        --sample-image img.jpg --format onnx --output exported/

writes exported/model.onnx (or model.ts) and its sidecar model.onnx.json (the baked vocabulary and
the pre-processing). With --embeddings-input the graph also takes a (C, D) phrase-embedding matrix,
so the vocabulary can change without re-exporting; the given vocabulary's embeddings are saved as
phrase_embeddings.npy and used by default. Run the export with
``tools/demo.py --onnx exported/model.onnx --input ...``. See docs/export.md.

The meta-architecture (FCOSMO or MaskRCNNStar) comes from the config's MODEL.META_ARCHITECTURE;
both exports have the same inputs and outputs, and the sidecar records which one it is
("model_kind"). --vocabulary is a comma list, a file with one phrase a line, or a registered dataset name; the
phrases are looked up in the model's phrase bank (MODEL.OPEN_VOCAB.EMBEDDINGS). --sample-image must
show an object the model detects: tracing records the path this image takes.
"""
import argparse
import os
import sys

import alpseg  # noqa: F401  (registers models and datasets)
from alpseg.utils.cli import add_common_arguments, setup_tool


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True)
    p.add_argument("--weights", required=True, help="model checkpoint (.pth / .pkl)")
    p.add_argument("--vocabulary", required=True, help="comma list, phrase file, or dataset name")
    p.add_argument("--format", choices=["onnx", "torchscript"], default="onnx")
    p.add_argument("--export-method", choices=["tracing"], default="tracing",
                   help="detectron2's export methods; the post-processing in the graph is exported by tracing only")
    p.add_argument("--sample-image", required=True, help="an image with at least one detection (used for tracing)")
    p.add_argument("--embeddings-input", action="store_true",
                   help="make the phrase embeddings a graph input (vocabulary changeable without re-export)")
    p.add_argument("--fold-batch-norms", action="store_true",
                   help="fold batch norms into the convs before export (equal up to float rounding)")
    p.add_argument("--output", required=True, help="folder for model.onnx / model.ts and its sidecar JSON")
    add_common_arguments(p)
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = p.parse_args(argv)
    setup_tool(args)

    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.data.detection_utils import read_image
    from detectron2.modeling import build_model

    from alpseg.config import load_config
    from alpseg.export import export_model, model_kind, preprocess
    from alpseg.text.vocabulary import build_vocabulary

    for flag, path in (("--config-file", args.config_file), ("--weights", args.weights),
                       ("--sample-image", args.sample_image)):
        if not os.path.isfile(path):
            print(f"error: {flag} {path}: no such file", file=sys.stderr)
            return 2
    try:
        cfg = load_config(args.config_file, args.opts + ["MODEL.WEIGHTS", args.weights, "MODEL.DEVICE", "cpu"])
        model = build_model(cfg)
        model_kind(model)  # a meta-architecture that cannot be exported: a one-line error before loading anything
        model.eval()
        DetectionCheckpointer(model).load(args.weights)
        phrases = build_vocabulary(args.vocabulary)
        embeddings = model.embed_phrases(phrases)
        try:
            image = read_image(args.sample_image, format="BGR")
        except Exception as e:  # PIL raises several types for files that are not images
            raise ValueError(f"--sample-image {args.sample_image}: not a readable image ({e})") from e
        pre = {"input_format": cfg.INPUT.FORMAT, "min_size_test": cfg.INPUT.MIN_SIZE_TEST,
               "max_size_test": cfg.INPUT.MAX_SIZE_TEST}
        path = export_model(
            model, phrases, embeddings, preprocess(image, {"preprocessing": pre}), args.output, fmt=args.format,
            embeddings_input=args.embeddings_input, preprocessing=pre, fuse_norms=args.fold_batch_norms,
            extra_meta={"config_file": os.path.abspath(args.config_file), "weights": os.path.abspath(args.weights),
                        "phrase_bank": cfg.MODEL.OPEN_VOCAB.EMBEDDINGS},
        )
    except (ValueError, TypeError, KeyError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
