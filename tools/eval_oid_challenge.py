#!/usr/bin/env python
"""Open Images challenge instance-segmentation metric on challenge CSV files (no TensorFlow).

    python tools/eval_oid_challenge.py --boxes GT_BOXES.csv --masks GT_MASKS.csv \
        --image-labels LABELS.csv [--hierarchy HIERARCHY.json] [--class-descriptions CLASSES.csv] \
        --predictions PRED.csv [--base-classes FILE] [--group-of-weight 1.0] \
        [--expand-predictions] --output RESULTS.json

RESULTS.json holds mAP, per_class (AP by MID, classes with ground truth only) and, with
--base-classes, AP50_base / AP50_novel (with --hierarchy also split into novel classes with and
without a base ancestor); --expand-predictions adds the same figures with predictions copied to
ancestor classes, under "expanded_predictions". See docs/evaluation.md.

Exit status: 0 on success; 1 on bad input (one line on stderr naming the file) or when nothing
could be evaluated (a header-only predictions file, or no prediction on an image with ground truth).
"""
import argparse
import os
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--boxes", required=True, help="GT boxes CSV (ImageID,LabelName,XMin,XMax,YMin,YMax,IsGroupOf)")
    p.add_argument("--masks", required=True, help="GT masks CSV (..., Mask = base64(zlib(RLE)))")
    p.add_argument("--image-labels", required=True, help="image-level labels CSV (ImageID,LabelName,Confidence)")
    p.add_argument("--hierarchy", help="class hierarchy JSON: expand GT up/down the hierarchy first")
    p.add_argument("--class-descriptions", help="MID,DisplayName CSV (no header): the class list and names")
    p.add_argument("--predictions", required=True,
                   help="predictions CSV (ImageID,ImageWidth,ImageHeight,LabelName,Score,Mask); scores in [0, 1]")
    p.add_argument("--base-classes", help="file of base-class MIDs, one a line (adds AP50_base / AP50_novel)")
    p.add_argument("--novel-classes", help="file of novel-class MIDs (default: every other evaluated class)")
    p.add_argument("--group-of-weight", type=float, default=1.0,
                   help="1.0 = official oid_challenge_evaluation.py; 0.0 = TF's "
                        "OpenImagesInstanceSegmentationChallengeEvaluator")
    p.add_argument("--expand-predictions", action="store_true",
                   help="also report the metric with predictions copied to their ancestor classes (needs "
                        "--hierarchy; not the official protocol, reported beside it)")
    p.add_argument("--max-predictions-per-image", type=int, default=100,
                   help="keep the best N predictions of each image (0 = keep all, like the TF script)")
    p.add_argument("--num-workers", type=int, default=2, help="processes for per-image matching")
    p.add_argument("--output", required=True, help="RESULTS.json")
    p.add_argument("--markdown", help="also write a Markdown table here")
    p.add_argument("--plot", help="also write the per-category AP bar plot here (.png / .pdf)")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first malformed CSV row (or score outside [0, 1]) instead of counting it")
    from alpseg.utils.cli import add_common_arguments

    add_common_arguments(p)
    p.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)  # old name of --no-progress
    return p.parse_args(argv)


def _fail(message: str) -> SystemExit:
    return SystemExit(f"eval_oid_challenge: error: {message}")


def main(argv=None) -> int:
    args = parse_args(argv)
    from alpseg.utils.cli import setup_tool

    logger = setup_tool(args)
    from alpseg.evaluation.oid.challenge import evaluate_oid_challenge_files
    from alpseg.evaluation.oid.io import read_class_list
    from alpseg.evaluation.reporting import log_results, plot_per_category_ap, results_markdown, write_json
    from alpseg.utils.io import atomic_write

    for flag, path in (("--boxes", args.boxes), ("--masks", args.masks), ("--image-labels", args.image_labels),
                       ("--predictions", args.predictions), ("--hierarchy", args.hierarchy),
                       ("--class-descriptions", args.class_descriptions), ("--base-classes", args.base_classes),
                       ("--novel-classes", args.novel_classes)):
        if path and not os.path.isfile(path):
            raise _fail(f"{flag}: no such file: {path}")
    if args.expand_predictions and not args.hierarchy:
        raise _fail("--expand-predictions needs --hierarchy (the ancestors come from it)")
    try:
        results = evaluate_oid_challenge_files(
            args.boxes, args.masks, args.image_labels, args.predictions, hierarchy=args.hierarchy,
            class_descriptions=args.class_descriptions, base_classes=args.base_classes,
            novel_classes=args.novel_classes, group_of_weight=args.group_of_weight, strict=args.strict,
            max_predictions_per_image=args.max_predictions_per_image or None, num_workers=args.num_workers,
            progress=not (args.no_progress or args.quiet), expand_predictions=args.expand_predictions)
        base = read_class_list(args.base_classes) if args.base_classes else None
    except (ValueError, OSError, UnicodeDecodeError) as e:
        raise _fail(str(e)) from None
    write_json(args.output, results)
    log_results(results, logger)
    if args.markdown:
        atomic_write(args.markdown, results_markdown(results, base_classes=base))
    if args.plot and results["per_class"]:
        plot_per_category_ap(results["per_class"], args.plot, results.get("class_names"), base)
    skipped = results.get("skipped") or {}
    if skipped:
        logger.warning("rows and predictions left out of the metric: %s", skipped)
    print(f"wrote {args.output}")
    if results["num_predictions_evaluated"] == 0:
        raise _fail(f"nothing was evaluated: none of the {results['num_prediction_images']} prediction images "
                    f"has an evaluatable prediction against the ground truth (left out: {skipped}); "
                    "check that ImageIDs and MIDs match the GT files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
