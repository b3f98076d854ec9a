"""The dataset preparation scripts under datasets/ produce what the registered loaders read."""
import json
import os
import runpy

import cv2
import numpy as np

from alpseg.data.datasets.image_info import write_image_info
from alpseg.data.datasets.oid import load_oid_challenge_segmentation

from handmade_formats import OID_V6_BOX_HEADER, write_csv, write_image

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _script(name):
    return runpy.run_path(os.path.join(REPO, "datasets", name), run_name="alpseg_test")["main"]


def test_locnar_oid_image_info(tmp_path):
    root = tmp_path
    write_image(str(root / "openimages/train/aaa.jpg"), 30, 40)
    write_image(str(root / "openimages/train/bbb.jpg"), 50, 20)
    lines = [{"image_id": i, "caption": "x"} for i in ("bbb", "aaa", "ccc", "aaa")]
    path = root / "localized_narratives/open_images_train_v6_localized_narratives.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n{broken\n")
    main = _script("prepare_locnar_oid_image_info.py")
    assert main(["--root", str(root), "--workers", "1", "--no-progress"]) == 0
    out = root / "openimages/annotations/locnar_oid_train_image_info.json"
    images = json.loads(out.read_text())["images"]
    assert images == [{"id": "aaa", "file_name": "aaa.jpg", "width": 40, "height": 30},
                      {"id": "bbb", "file_name": "bbb.jpg", "width": 20, "height": 50}]  # ccc is missing
    assert not os.path.exists(str(out) + ".partial.jsonl")


def test_image_info_resumes_from_its_partial_log(tmp_path):
    write_image(str(tmp_path / "img/a.jpg"), 10, 10)
    write_image(str(tmp_path / "img/b.jpg"), 10, 10)
    out = tmp_path / "info.json"
    # a previous, interrupted run measured "a" (the fake size proves it is not measured again)
    (tmp_path / "info.json.partial.jsonl").write_text(json.dumps({"id": "a", "size": [7, 9]}) + "\n{cut")
    report = write_image_info(["a", "b"], str(tmp_path / "img"), str(out), workers=1, progress=False)
    assert report["images"] == 2
    assert json.loads(out.read_text())["images"][0] == {"id": "a", "file_name": "a.jpg", "width": 7, "height": 9}


def test_oid_segmentation_release_to_challenge_csvs_and_loader(tmp_path):
    root = tmp_path
    oid = root / "openimages"
    write_image(str(oid / "validation/img1.jpg"), 40, 60)
    mask = np.zeros((20, 30), np.uint8)  # the PNG is at half resolution, as in the release
    mask[5:10, 15:25] = 255
    os.makedirs(oid / "raw/validation-masks")
    cv2.imwrite(str(oid / "raw/validation-masks/img1_m01_abc.png"), mask)
    write_csv(str(oid / "raw/validation-annotations-object-segmentation.csv"),
              ["MaskPath", "ImageID", "LabelName", "BoxID", "BoxXMin", "BoxXMax", "BoxYMin", "BoxYMax",
               "PredictedIoU", "Clicks"],
              [["img1_m01_abc.png", "img1", "/m/01", "abc", 0.5, 0.833333, 0.25, 0.5, 0.9, ""],
               ["img1_m02_def.png", "img1", "/m/99", "def", 0.0, 0.1, 0.0, 0.1, 0.9, ""]])  # not a kept class
    write_csv(str(oid / "raw/validation-annotations-bbox.csv"), OID_V6_BOX_HEADER,
              [["img1", "xclick", "/m/01", 1, 0.5, 0.833333, 0.25, 0.5, 0, 0, 1, 0, 0]])
    write_csv(str(oid / "raw/validation-annotations-human-imagelabels-boxable.csv"),
              ["ImageID", "Source", "LabelName", "Confidence"],
              [["img1", "verification", "/m/01", 1], ["img1", "verification", "/m/02", 0]])
    classes = write_csv(str(oid / "segmentation/classes-description-segmentable.csv"), None,
                        [["/m/01", "Sea turtle"], ["/m/02", "Sombrero"]])
    main = _script("prepare_oid_segmentation.py")
    assert main(["--split", "validation", "--root", str(root), "--no-progress"]) == 0
    seg = oid / "segmentation"
    labels = (seg / "validation-segmentation-labels.csv").read_text().split()
    assert labels == ["ImageID,LabelName,Confidence", "img1,/m/01,1", "img1,/m/02,0"]
    (d,) = load_oid_challenge_segmentation(str(seg / "validation-segmentation-masks.csv"),
                                           str(seg / "validation-segmentation-bbox.csv"), classes,
                                           str(oid / "validation"))
    (a,) = d["annotations"]
    assert (d["height"], d["width"]) == (40, 60) and a["phrase"] == "sea turtle" and a["iscrowd"] == 1
    from pycocotools import mask as mask_utils

    full = mask_utils.decode(a["segmentation"])
    expected = np.zeros((40, 60), np.uint8)
    expected[10:20, 30:50] = 1  # nearest-neighbour upsampling of the PNG to the image size
    assert (full == expected).all()
