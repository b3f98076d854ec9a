"""The one Markdown-table writer of the package (evaluation reports, the transfer table)."""
from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

__all__ = ["markdown_table"]


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return text == "-"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]],
                   align: Optional[Sequence[str]] = None) -> str:
    """A GitHub-flavoured Markdown table, one line per row, ending in a newline.

    Cells are ``str()``-ed and ``|`` inside them escaped. ``align`` gives one of ``"left"`` /
    ``"right"`` per column; by default a column is right-aligned when every cell is a number (or
    ``-``).
    """
    rows = [[str(c) for c in r] for r in rows]
    for r in rows:
        if len(r) != len(header):
            raise ValueError(f"table row has {len(r)} cells, header has {len(header)}: {r}")
    if align is None:
        right = [bool(rows) and all(_is_number(r[i]) for r in rows) for i in range(len(header))]
    else:
        if len(align) != len(header) or set(align) - {"left", "right"}:
            raise ValueError(f"align must give 'left' or 'right' for each of {len(header)} columns: {align}")
        right = [a == "right" for a in align]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if n else "---" for n in right) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"
