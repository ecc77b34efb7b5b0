"""Tables rendered as Markdown (GitHub pipe tables) or reStructuredText (simple tables).

A :class:`Table` is a title, a header row, body rows of strings and notes
printed under it. Columns whose cells all look like numbers (digits, signs,
``%``, brackets) are right-aligned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Table", "render"]

_NUMERIC = re.compile(r"^[-+]?[\d.,]+(?:\s*%|\s*\(.*\)|\s*\[.*\])*$")


@dataclass
class Table:
    """A titled table; ``notes`` are paragraphs printed after it."""

    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        if len(cells) != len(self.headers):
            raise ValueError(f"row {cells!r} has {len(cells)} cells, expected {len(self.headers)}")
        self.rows.append([str(cell) for cell in cells])


def _right_aligned(table: Table) -> list[bool]:
    return [
        bool(table.rows)
        and all(_NUMERIC.match(row[i]) or row[i] in {"n/a", "-"} for row in table.rows)
        for i in range(len(table.headers))
    ]


def _widths(table: Table) -> list[int]:
    return [
        max(len(table.headers[i]), *(len(row[i]) for row in table.rows))
        if table.rows
        else len(table.headers[i])
        for i in range(len(table.headers))
    ]


def _markdown(table: Table) -> str:
    widths = _widths(table)
    right = _right_aligned(table)

    def line(cells: list[str]) -> str:
        padded = [
            cell.rjust(w) if r else cell.ljust(w)
            for cell, w, r in zip(cells, widths, right, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(
            "-" * (w + 1) + ":" if r else "-" * (w + 2) for w, r in zip(widths, right, strict=True)
        )
        + "|"
    )
    out = [f"### {table.title}", "", line(table.headers), rule]
    out += [line(row) for row in table.rows]
    for note in table.notes:
        out += ["", note]
    return "\n".join(out)


def _rst(table: Table) -> str:
    # Simple tables read a blank first cell as a continuation line: never emit one.
    rows = [[row[0] or "-", *row[1:]] for row in table.rows]
    widths = _widths(Table(table.title, table.headers, rows))
    right = _right_aligned(table)

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.rjust(w) if r else cell.ljust(w)
            for cell, w, r in zip(cells, widths, right, strict=True)
        ).rstrip()

    rule = "  ".join("=" * w for w in widths)
    out = [f"**{table.title}**", "", rule, line(table.headers), rule]
    out += [line(row) for row in rows]
    out.append(rule)
    for note in table.notes:
        out += ["", note.replace("`", "``")]
    return "\n".join(out)


def render(table: Table, fmt: str = "markdown") -> str:
    """The table as ``markdown`` or ``rst`` text (no trailing newline)."""
    if fmt == "markdown":
        return _markdown(table)
    if fmt == "rst":
        return _rst(table)
    raise ValueError(f"unknown table format {fmt!r}: expected 'markdown' or 'rst'")
