#!/usr/bin/env python
"""Encode phrases into a phrase bank (.npz) for open-vocabulary training and testing.

    tools/embed_phrases.py --phrases ALPS.json --output banks/locnar.npz
    tools/embed_phrases.py --phrases oid_v6_seg_val --output banks/locnar.npz      # add test classes
    tools/embed_phrases.py --phrases words.txt --output b.npz --pretrained none    # random weights

--phrases is a text file (one phrase a line), an ALP JSON (its "phrases" list), a registered dataset
name (its class names) or a comma list. If --output exists, only phrases it lacks are encoded; the
bank's encoder and prompt set must match. Progress is saved every --save-every seconds, so an
interrupted run resumes. See docs/phrase_bank.md.
"""
import argparse
import sys

import alpseg  # noqa: F401  (registers the dataset names --phrases may refer to)
from alpseg.text.bank import update_bank_file
from alpseg.text.vocabulary import read_phrase_source
from alpseg.text.encoder import PhraseEncoder
from alpseg.text.prompts import PROMPT_SETS, normalize_phrase
from alpseg.utils.cli import add_common_arguments, setup_tool


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phrases", required=True, help="phrase file, ALP JSON, dataset name or comma list")
    parser.add_argument("--output", required=True, help="bank file (.npz) to create or extend")
    parser.add_argument("--model", default="ViT-B-32", help="open_clip model name (default ViT-B-32)")
    parser.add_argument("--pretrained", default="openai",
                        help="open_clip weights tag, a checkpoint path, or 'none' for seeded random weights")
    parser.add_argument("--prompts", default="vild", choices=sorted(PROMPT_SETS),
                        help="'vild' (63 ViLD templates, default) or 'single'")
    parser.add_argument("--batch-size", type=int, default=32, help="phrases per forward pass (default 32)")
    parser.add_argument("--device", default="auto", help="'auto' (GPU if any), 'cpu', 'cuda', 'cuda:1', ...")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16"],
                        help="storage type of a new bank (an existing bank keeps its own)")
    parser.add_argument("--save-every", type=float, default=600.0,
                        help="seconds between intermediate saves (resumable runs; default 600)")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    setup_tool(args)

    raw = read_phrase_source(args.phrases)
    phrases = [p for p in raw if normalize_phrase(p)]
    if len(phrases) < len(raw):
        print(f"skipped {len(raw) - len(phrases)} phrases that are empty after normalization", file=sys.stderr)
    if not phrases:
        print(f"error: no phrases in {args.phrases!r}", file=sys.stderr)
        return 1
    encoder = PhraseEncoder(args.model, args.pretrained, args.prompts, device=args.device,
                            batch_size=args.batch_size)
    bank, added = update_bank_file(args.output, phrases, encoder, dtype=args.dtype,
                                   checkpoint_interval_s=args.save_every)
    print(f"{args.output}: {len(bank)} phrases x {bank.dim} ({bank.embeddings.dtype}), "
          f"{len(added)} newly encoded, {len(set(map(normalize_phrase, phrases))) - len(added)} already present; "
          f"encoder {bank.encoder}, prompts {bank.prompts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
