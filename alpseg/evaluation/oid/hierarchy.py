"""Open Images class hierarchy and the hierarchical expansion of ground truth.

The challenge evaluates a detection of a parent class (e.g. "Animal") against boxes and masks of its
descendants, which the official tooling achieves by rewriting the GT files before evaluation:

* every box row and every mask row is repeated once for each ancestor of its class;
* an image-level label with confidence 1 (verified present) is repeated for each ancestor;
* any other image-level label (verified absent) is repeated for each descendant.

Ancestors and descendants are sets: a class reachable along several paths is added once. The JSON
root (``{"LabelName": "/m/0bl9f", "Subcategory": [...]}`` in the official files) is not a class and
is never added. Predictions are never expanded.

Files that were already expanded (the official ``*_expanded.csv``) must not be expanded again, which
would duplicate ground truth: a box or mask file in which every row of a class with ancestors already
has a row of identical coordinates for each ancestor is left as it is (and this is logged).
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Dict, List, Mapping, Set, Union

from .io import ChallengeGroundTruth

__all__ = ["ClassHierarchy", "load_hierarchy", "expand_ground_truth"]

logger = logging.getLogger(__name__)


@dataclass
class ClassHierarchy:
    """``ancestors[mid]`` and ``descendants[mid]`` (both without ``mid`` itself) of every class."""

    ancestors: Dict[str, Set[str]]
    descendants: Dict[str, Set[str]]

    @classmethod
    def from_json(cls, tree: Mapping) -> "ClassHierarchy":
        ancestors: Dict[str, Set[str]] = {}
        descendants: Dict[str, Set[str]] = {}

        def visit(node: Mapping, path: List[str]) -> None:
            mid = node.get("LabelName")
            if not isinstance(mid, str):
                raise ValueError(f"hierarchy node without a LabelName string: {dict(node)!r:.200}")
            ancestors.setdefault(mid, set()).update(path)
            descendants.setdefault(mid, set())
            for parent in path:
                descendants.setdefault(parent, set()).add(mid)
            for child in node.get("Subcategory", []) or []:
                visit(child, path + [mid])

        if not isinstance(tree, Mapping) or "LabelName" not in tree:
            raise ValueError("a hierarchy is a JSON object {\"LabelName\": ..., \"Subcategory\": [...]}")
        for child in tree.get("Subcategory", []) or []:  # the root is skipped
            visit(child, [])
        return cls(ancestors, descendants)

    def __contains__(self, mid: str) -> bool:
        return mid in self.ancestors


def load_hierarchy(source: Union[str, Mapping, ClassHierarchy]) -> ClassHierarchy:
    """A :class:`ClassHierarchy` from a JSON path, a parsed JSON tree, or an existing hierarchy."""
    if isinstance(source, ClassHierarchy):
        return source
    if isinstance(source, str):
        with open(source, "r", encoding="utf-8") as f:
            source = json.load(f)
    return ClassHierarchy.from_json(source)


def expand_ground_truth(gt: ChallengeGroundTruth, hierarchy: Union[str, Mapping, ClassHierarchy]
                        ) -> ChallengeGroundTruth:
    """A new :class:`ChallengeGroundTruth` with rows expanded as described in the module docstring.

    Each original row is followed by its copies (ancestors / descendants in sorted MID order). A row
    whose class is not in the hierarchy is kept unexpanded and counted in
    ``skipped["labels_not_in_hierarchy"]`` (the TF tool asserts instead).
    """
    h = load_hierarchy(hierarchy)
    skipped = Counter(gt.skipped)

    def up(rows, kind):
        if _already_expanded(rows, h):
            logger.info("GT %s rows are already expanded up the hierarchy; not expanding them again", kind)
            return list(rows)
        out = []
        for r in rows:
            out.append(r)
            if r.label not in h:
                skipped["labels_not_in_hierarchy"] += 1
                continue
            out.extend(r._replace(label=a) for a in sorted(h.ancestors[r.label]))
        return out

    labels = []
    for r in gt.labels:
        labels.append(r)
        if r.label not in h:
            skipped["labels_not_in_hierarchy"] += 1
            continue
        others = h.ancestors[r.label] if int(r.confidence) == 1 else h.descendants[r.label]
        labels.extend(r._replace(label=m) for m in sorted(others))
    return ChallengeGroundTruth(boxes=up(gt.boxes, "box"), masks=up(gt.masks, "mask"), labels=labels,
                               skipped=skipped)


def _already_expanded(rows, h: ClassHierarchy) -> bool:
    """True if some row has ancestors and every such row's ancestor copies are present."""
    keys = {(r.image_id, r.label, r.xmin, r.xmax, r.ymin, r.ymax, int(r.is_group_of)) for r in rows}
    needing = 0
    for r in rows:
        ancestors = h.ancestors.get(r.label)
        if not ancestors:
            continue
        needing += 1
        for a in ancestors:
            if (r.image_id, a, r.xmin, r.xmax, r.ymin, r.ymax, int(r.is_group_of)) not in keys:
                return False
    return needing > 0
