import pytest

from alpseg.text.prompts import article, expand_prompts, get_templates, normalize_phrase


def test_vild_has_63_distinct_templates_with_one_slot():
    templates = get_templates("vild")
    assert len(templates) == 63
    assert len(set(templates)) == 63
    assert all(t.count("{}") == 1 for t in templates)
    # ViLD: 5 "... in the scene." templates, then 58 CLIP ImageNet-style ones
    assert [t.endswith("in the scene.") for t in templates] == [True] * 5 + [False] * 58
    assert templates[0] == "There is {article} {} in the scene."
    assert templates[-1] == "a painting of a {}."


def test_single_prompt_set():
    assert get_templates("single") == ("a photo of {article} {}.",)
    assert expand_prompts("Dog", "single") == ["a photo of a dog."]
    assert expand_prompts("apple", "single") == ["a photo of an apple."]


def test_article_rule():
    assert article("apple") == "an"
    assert article("dog") == "a"
    assert article("Umbrella") == "an"
    assert article("hour") == "a"  # ViLD's letter rule, no pronunciation exceptions
    with pytest.raises(ValueError):
        article("")


def test_expanded_sentences():
    s = expand_prompts("apple")
    assert len(s) == 63
    assert s[0] == "There is an apple in the scene."  # "There is" sentences keep their form
    assert s[1] == "There is the apple in the scene."
    assert s[2] == "This is a photo of an apple in the scene."  # ViLD's "This is " prefix
    assert s[59] == "This is an embroidered apple."
    d = expand_prompts("dog")
    assert d[8] == "This is a photo of a dog."
    assert d[52] == "This is the plastic dog."
    # the phrase is normalized and a trailing dot removed before filling in
    assert expand_prompts("Traffic_Light.") == expand_prompts("traffic light")
    with pytest.raises(ValueError):
        expand_prompts(" _ ")
    with pytest.raises(ValueError):
        expand_prompts("dog", "nine")


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Traffic_Light", "traffic light"),
        ("cup/mug", "cup or mug"),
        ("  Hot   Dog \n", "hot dog"),
        ("bow_(weapon)", "bow (weapon)"),
        ("a / b", "a or b"),
        ("", ""),
    ],
)
def test_normalize_phrase(raw, expected):
    assert normalize_phrase(raw) == expected
    assert normalize_phrase(expected) == expected  # idempotent


def test_normalize_phrase_rejects_non_strings():
    with pytest.raises(TypeError):
        normalize_phrase(None)
