"""Open Images v6 PNG segmentation release -> challenge CSVs."""
import csv

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from PIL import Image

from alpseg.evaluation.oid.challenge import evaluate_oid_challenge, prepare_ground_truth
from alpseg.evaluation.oid.convert import convert_oid_segmentation_release
from alpseg.evaluation.oid.io import ImagePredictions, read_ground_truth_csvs


def _write(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def test_png_release_conversion(tmp_path):
    (tmp_path / "masks" / "validation-masks-0").mkdir(parents=True)
    # image 'aa' is 16 x 12 (w x h); its PNGs are half-size 8 x 6 and are upsampled (nearest)
    small = np.zeros((6, 8), np.uint8)
    small[1:4, 2:6] = 255
    Image.fromarray(small).save(tmp_path / "masks" / "validation-masks-0" / "aa_m1_x.png")
    other = np.zeros((6, 8), np.uint8)
    other[4:6, 0:3] = 255
    Image.fromarray(other).save(tmp_path / "masks" / "validation-masks-0" / "aa_m2_y.png")
    seg_cols = ["MaskPath", "ImageID", "LabelName", "BoxID", "BoxXMin", "BoxXMax", "BoxYMin", "BoxYMax",
                "PredictedIoU", "Clicks"]
    _write(tmp_path / "seg.csv", seg_cols, [
        ["aa_m1_x.png", "aa", "/m/1", "x", "0.25", "0.75", "0.1666667", "0.6666667", "0.9", ""],
        ["aa_m2_y.png", "aa", "/m/2", "y", "0.0", "0.375", "0.6666667", "1.0", "0.9", ""],
        ["missing.png", "aa", "/m/1", "z", "0.0", "0.1", "0.0", "0.1", "0.9", ""],
        ["aa_m1_x.png", "aa", "/m/other", "x", "0.25", "0.75", "0.1666667", "0.6666667", "0.9", ""],
    ])
    bbox_cols = ["ImageID", "Source", "LabelName", "Confidence", "XMin", "XMax", "YMin", "YMax", "IsOccluded",
                 "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside"]
    _write(tmp_path / "bbox.csv", bbox_cols, [
        ["aa", "xclick", "/m/1", "1", "0.25", "0.75", "0.16666667", "0.66666667", "0", "0", "0", "0", "0"],
        ["aa", "xclick", "/m/2", "1", "0.0", "0.375", "0.66666667", "1.0", "0", "0", "1", "0", "0"],
        ["aa", "xclick", "/m/1", "1", "0.8", "0.9", "0.1", "0.2", "0", "0", "0", "0", "0"],  # box without mask
        ["bb", "xclick", "/m/1", "1", "0.8", "0.9", "0.1", "0.2", "0", "0", "0", "0", "0"],  # other image
    ])
    _write(tmp_path / "labels.csv", ["ImageID", "Source", "LabelName", "Confidence"],
           [["aa", "verification", "/m/1", "1"], ["aa", "verification", "/m/3", "0"], ["aa", "x", "/m/zz", "1"]])
    out = {k: str(tmp_path / f"out_{k}.csv") for k in ("boxes", "masks", "labels")}
    report = convert_oid_segmentation_release(
        str(tmp_path / "seg.csv"), str(tmp_path / "masks"), out["masks"], out["boxes"], out["labels"],
        bbox_csv=str(tmp_path / "bbox.csv"), image_labels_csv=str(tmp_path / "labels.csv"),
        classes=["/m/1", "/m/2", "/m/3"], image_sizes={"aa": (16, 12)}, progress=False)
    assert report["missing_mask_png"] == 1 and report["segmentation_rows_other_classes"] == 1
    assert report["mask_rows"] == 2 and report["box_rows"] == 3 and report["label_rows"] == 2

    gt = read_ground_truth_csvs(out["boxes"], out["masks"], out["labels"], strict=True)
    prepared = prepare_ground_truth(gt)
    img = prepared.images["aa"]
    assert img.size == (12, 16)
    assert sum(m is not None for m in img.masks) == 2 and len(img.masks) == 3  # both masks joined with boxes
    big = mask_utils.decode(next(m for m, lab in zip(img.masks, img.labels)
                                 if m is not None and prepared.class_mids[lab] == "/m/1"))
    expected = np.kron((small > 0).astype(np.uint8), np.ones((2, 2), np.uint8))
    assert (big == expected).all()
    assert img.is_group_of[[prepared.class_mids[lab] == "/m/2" for lab in img.labels]].all()
    # predicting the GT masks scores AP 1 for /m/1 (group-of /m/2 is absorbed with weight 1 -> AP 1 too)
    masks = [m for m in img.masks if m is not None]
    labels = [prepared.class_mids[lab] for lab, m in zip(img.labels, img.masks) if m is not None]
    r = evaluate_oid_challenge(prepared, {"aa": ImagePredictions(labels, [0.9, 0.8], masks)}, num_workers=1,
                               progress=False)
    assert r["per_class"] == {"/m/1": 1.0, "/m/2": 1.0}


def test_missing_columns_are_reported(tmp_path):
    _write(tmp_path / "seg.csv", ["ImageID", "LabelName"], [["a", "/m/1"]])
    with pytest.raises(ValueError, match="MaskPath"):
        convert_oid_segmentation_release(str(tmp_path / "seg.csv"), str(tmp_path), str(tmp_path / "m.csv"))
