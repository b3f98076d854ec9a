"""Fixtures of the engine tests: a phrase bank covering every miniature dataset's phrases."""
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from alpseg.testing import write_random_phrase_bank
from alpseg.text.prompts import normalize_phrase


@pytest.fixture(scope="session")
def phrase_bank(miniature_with_alps, tmp_path_factory):
    """A bank with random unit rows for every phrase any miniature dataset can ask for."""
    phrases = set()
    for name in ("coco_2017_train", "coco_2017_val"):
        phrases |= {normalize_phrase(c) for c in MetadataCatalog.get(name).thing_classes}
    for name in ("locnar_oid_train_alps", "locnar_coco_train_alps", "oid_v6_locnar_train_boxes", "oid_v6_seg_test"):
        phrases |= {a["phrase"] for d in DatasetCatalog.get(name) for a in d["annotations"]}
        phrases |= {normalize_phrase(c) for c in getattr(MetadataCatalog.get(name), "thing_classes", [])}
    return write_random_phrase_bank(str(tmp_path_factory.mktemp("bank") / "bank.npz"), sorted(phrases), 512, "vild")


