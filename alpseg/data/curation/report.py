"""Counts of a curation run (the paper's Table 1 plus skips and drops per reason)."""
from __future__ import annotations

from collections import Counter
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set

__all__ = ["CurationReport", "format_report"]


class CurationReport:
    """Counts of a curation run; addable, so chunks and shards can be combined.

    ``to_dict(alps)`` gives the paper's Table 1 columns (images, ALPs, unique phrases, computed from
    the ALPs) plus narratives read/skipped per reason and phrase candidates dropped per reason,
    and the most frequent dropped phrases (to review the word lists on one's own data).
    Every candidate is either an ALP or dropped under one reason: ``phrase_candidates == alps +
    sum(dropped.values())``.
    """

    COUNTERS = ("lines", "narratives_read", "narratives_curated", "phrase_candidates", "alps",
                "partially_aligned", "clipped", "widened")
    TOP_DROPPED = 20  # rows of the dropped-phrases table

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.skipped: Counter = Counter()
        self.dropped: Counter = Counter()
        self.curated_images: Set[str] = set()
        self.dropped_words: Counter = Counter()  # (reason, phrase) of candidates dropped by the phrase rules

    def skip(self, reason: str) -> None:
        self.skipped[reason] += 1

    def add(self, other: "CurationReport") -> "CurationReport":
        self.counts.update(other.counts)
        self.skipped.update(other.skipped)
        self.dropped.update(other.dropped)
        self.curated_images |= other.curated_images
        self.dropped_words.update(other.dropped_words)
        return self

    def state(self) -> Dict[str, Any]:
        """Everything needed to rebuild the report (for checkpoints and shard files)."""
        return {"counts": dict(self.counts), "skipped": dict(self.skipped), "dropped": dict(self.dropped),
                "curated_images": sorted(self.curated_images),
                "dropped_words": sorted([r, p, n] for (r, p), n in self.dropped_words.items())}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "CurationReport":
        r = cls()
        r.counts.update(state.get("counts", {}))
        r.skipped.update(state.get("skipped", {}))
        r.dropped.update(state.get("dropped", {}))
        r.curated_images.update(state.get("curated_images", []))
        r.dropped_words.update({(reason, phrase): n for reason, phrase, n in state.get("dropped_words", [])})
        return r

    def top_dropped(self, k: int = TOP_DROPPED) -> List[List[Any]]:
        """``[[reason, phrase, count], ...]``: the ``k`` most frequent dropped phrases (ties by name)."""
        rows = sorted(self.dropped_words.items(), key=lambda item: (-item[1], item[0]))[:k]
        return [[reason, phrase, n] for (reason, phrase), n in rows]

    def to_dict(self, alps: Optional[Sequence[Mapping[str, Any]]] = None, *,
                num_images: Optional[int] = None, num_unique_phrases: Optional[int] = None) -> Dict[str, Any]:
        if alps is not None:
            num_images = len({str(a["image_id"]) for a in alps})
            num_unique_phrases = len({a["phrase"] for a in alps})
        c = self.counts
        return {
            "images": num_images,
            "alps": c["alps"],
            "unique_phrases": num_unique_phrases,
            "narratives_read": c["narratives_read"],
            "narratives_curated": c["narratives_curated"],
            "images_with_narratives": len(self.curated_images),
            "lines": c["lines"],
            "skipped": dict(sorted(self.skipped.items())),
            "phrase_candidates": c["phrase_candidates"],
            "dropped": dict(sorted(self.dropped.items())),
            "partially_aligned_alps": c["partially_aligned"],
            "alps_with_clipped_points": c["clipped"],
            "alps_widened_from_lines": c["widened"],
            "top_dropped": self.top_dropped(),
        }


def format_report(report: Mapping[str, Any]) -> str:
    """A human-readable rendering of ``CurationReport.to_dict()`` (for the console)."""
    lines = ["ALP curation report",
             f"  images with ALPs   {report['images']}",
             f"  ALPs               {report['alps']}",
             f"  unique phrases     {report['unique_phrases']}",
             f"  narratives read    {report['narratives_read']} (curated {report['narratives_curated']}, "
             f"images {report['images_with_narratives']})",
             f"  phrase candidates  {report['phrase_candidates']}"]
    for title, key in (("narratives skipped", "skipped"), ("phrases dropped", "dropped")):
        total = sum(report[key].values())
        lines.append(f"  {title:<18} {total}")
        lines += [f"    {reason:<24} {n}" for reason, n in report[key].items()]
    lines.append(f"  partially aligned ALPs {report['partially_aligned_alps']}, "
                 f"ALPs with clipped points {report['alps_with_clipped_points']}, "
                 f"line gestures widened {report.get('alps_widened_from_lines', 0)}")
    top = report.get("top_dropped") or []
    if top:
        lines.append("  most frequent dropped phrases (review the word lists with these)")
        lines += [f"    {n:>7}  {reason:<13} {phrase}" for reason, phrase, n in top]
    return "\n".join(lines)

