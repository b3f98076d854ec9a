#!/usr/bin/env python
"""Open Images image sizes -> the COCO-style image-info JSON that ALP curation needs for LocNar-OID.

  python datasets/prepare_locnar_oid_image_info.py [--root $DETECTRON2_DATASETS] [--workers 8]

Reads the image ids of localized_narratives/open_images_train_v6_localized_narratives.jsonl, measures
openimages/train/<ImageID>.jpg (headers only) and writes
openimages/annotations/locnar_oid_train_image_info.json. Resumable (kill it and run it again); missing
images are counted and left out. See datasets/README.md.
"""
import argparse
import json
import logging
import os
import sys

from alpseg.data.datasets.image_info import narrative_image_ids, write_image_info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=os.getenv("DETECTRON2_DATASETS", "datasets"), help="datasets root")
    p.add_argument("--narratives", nargs="+", help="LocNar JSONL files (default: ROOT/localized_narratives/"
                                                     "open_images_train_v6_localized_narratives.jsonl)")
    p.add_argument("--images-dir", help="default: ROOT/openimages/train")
    p.add_argument("--output", help="default: ROOT/openimages/annotations/locnar_oid_train_image_info.json")
    p.add_argument("--workers", type=int, default=4, help="processes reading image headers")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    narratives = args.narratives or [
        os.path.join(args.root, "localized_narratives/open_images_train_v6_localized_narratives.jsonl")]
    ids, bad = narrative_image_ids(narratives)
    if bad:
        logging.warning("skipped narrative lines: %s", dict(bad))
    report = write_image_info(
        ids, args.images_dir or os.path.join(args.root, "openimages/train"),
        args.output or os.path.join(args.root, "openimages/annotations/locnar_oid_train_image_info.json"),
        workers=args.workers, progress=not args.no_progress)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
