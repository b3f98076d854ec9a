#!/usr/bin/env python
"""Open Images v6 segmentation release (CSV + PNG masks) -> the challenge CSVs of oid_v6_seg_{val,test}.

  python datasets/prepare_oid_segmentation.py --split validation [--root $DETECTRON2_DATASETS]
  python datasets/prepare_oid_segmentation.py --split test

Inputs (defaults under ROOT/openimages, see datasets/README.md):
  raw/{split}-annotations-object-segmentation.csv, raw/{split}-masks/*.png   the v6 masks
  raw/{split}-annotations-bbox.csv                     v6 boxes (IsGroupOf and exact box coordinates)
  raw/{split}-annotations-human-imagelabels-boxable.csv  verified image-level labels
  segmentation/classes-description-segmentable.csv    the kept classes (default: the shipped 300 challenge classes)
  {split}/<ImageID>.jpg                                image sizes (headers only)
Outputs: segmentation/{split}-segmentation-{bbox,masks,labels}.csv (challenge format, docs/evaluation.md).
The conversion itself is alpseg.evaluation.oid.convert.convert_oid_segmentation_release.
"""
import argparse
import json
import logging
import os
import sys

from alpseg.data.datasets.class_lists import OID_SEGMENTABLE_CLASSES
from alpseg.evaluation.oid.convert import convert_oid_segmentation_release
from alpseg.evaluation.oid.io import read_class_descriptions


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--split", required=True, choices=["validation", "test"])
    p.add_argument("--root", default=os.getenv("DETECTRON2_DATASETS", "datasets"), help="datasets root")
    p.add_argument("--raw-dir", help="folder of the downloaded v6 files (default ROOT/openimages/raw)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    oid = os.path.join(args.root, "openimages")
    raw = args.raw_dir or os.path.join(oid, "raw")
    seg = os.path.join(oid, "segmentation")
    s = args.split
    own = os.path.join(seg, "classes-description-segmentable.csv")
    classes = read_class_descriptions(own if os.path.isfile(own) else OID_SEGMENTABLE_CLASSES)
    report = convert_oid_segmentation_release(
        segmentation_csv=os.path.join(raw, f"{s}-annotations-object-segmentation.csv"),
        masks_dir=os.path.join(raw, f"{s}-masks"),
        output_masks=os.path.join(seg, f"{s}-segmentation-masks.csv"),
        output_boxes=os.path.join(seg, f"{s}-segmentation-bbox.csv"),
        output_labels=os.path.join(seg, f"{s}-segmentation-labels.csv"),
        bbox_csv=os.path.join(raw, f"{s}-annotations-bbox.csv"),
        image_labels_csv=os.path.join(raw, f"{s}-annotations-human-imagelabels-boxable.csv"),
        classes=list(classes), images_dir=os.path.join(oid, s), progress=not args.no_progress)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
