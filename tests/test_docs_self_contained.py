"""The repository documents itself: no reference to a SPEC file outside it, and docs/ links resolve."""
import glob
import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = sorted(glob.glob(os.path.join(REPO, "docs", "*.md")) + [os.path.join(REPO, "README.md")]
              + glob.glob(os.path.join(REPO, "alpseg", "**", "*.py"), recursive=True)
              + glob.glob(os.path.join(REPO, "tools", "*.py")) + glob.glob(os.path.join(REPO, "datasets", "*.py")))
# "SPEC.md", "SPEC 2.2", "SPEC section 9": the project's contract file, which is not in the repository
SPEC_REFERENCE = re.compile(r"\bSPEC(\.md\b|\s+(section\s+)?\d)")
LINK = re.compile(r"\]\(([^)#\s]+\.md)(#[^)\s]+)?\)")


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("path", TEXT, ids=lambda p: os.path.relpath(p, REPO))
def test_no_reference_to_a_spec_outside_the_repository(path):
    hits = [i + 1 for i, line in enumerate(open(path, encoding="utf-8")) if SPEC_REFERENCE.search(line)]
    assert not hits, f"{os.path.relpath(path, REPO)} lines {hits}: point at the repository's docs instead"


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(REPO, "docs", "*.md"))), ids=os.path.basename)
def test_links_between_docs_resolve(path):
    for target, anchor in LINK.findall(open(path, encoding="utf-8").read()):
        if "://" in target:
            continue
        full = os.path.normpath(os.path.join(os.path.dirname(path), target))
        assert os.path.isfile(full), f"{os.path.basename(path)} links to missing {target}"
        if anchor:
            headings = [line.lstrip("#") for line in open(full, encoding="utf-8") if line.startswith("#")]
            assert anchor[1:] in {_anchor(h) for h in headings}, f"{os.path.basename(path)}: no {anchor} in {target}"


def test_the_pattern_and_the_anchor_rule():
    assert SPEC_REFERENCE.search("(SPEC 2.2)") and SPEC_REFERENCE.search("SPEC section 9") and SPEC_REFERENCE.search("SPEC.md")
    assert not SPEC_REFERENCE.search("ALPSEG_TORCH_SPEC") and not SPEC_REFERENCE.search("a spec of 2")
    assert _anchor(" Dataset dicts and instance fields") == "dataset-dicts-and-instance-fields"


def _architecture():
    return open(os.path.join(REPO, "docs", "architecture.md"), encoding="utf-8").read()


def test_architecture_map_names_every_module_of_the_package():
    """docs/architecture.md matches the tree: each module file of alpseg/ is named in the package map."""
    text = _architecture()
    package_map = text[text.index("## Package map"):text.index("## Where do I change X")]
    missing = []
    for path in glob.glob(os.path.join(REPO, "alpseg", "**", "*.py"), recursive=True):
        name = os.path.basename(path)
        if name != "__init__.py" and not re.search(r"(?<![\w.])" + re.escape(name), package_map):
            missing.append(os.path.relpath(path, REPO))
    assert not missing, f"add to docs/architecture.md's package map: {sorted(missing)}"


def test_paths_named_in_the_architecture_page_exist():
    paths = set(re.findall(r"`((?:alpseg|tests|configs|tools|bench)/[\w/.*\-]+)`", _architecture()))
    assert len(paths) > 20
    missing = sorted(p for p in paths if not glob.glob(os.path.join(REPO, p)))
    assert not missing, missing
