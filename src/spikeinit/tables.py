"""Plain-text and CSV output shared by every result: one table format, one CSV writer.

:class:`TabularResult` gives :func:`spikeinit.initialize`'s records, :func:`spikeinit.calibrate`'s
result and :func:`spikeinit.report`'s report the same three methods: :meth:`~TabularResult.table`,
:meth:`~TabularResult.print` and :meth:`~TabularResult.to_csv`.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, TextIO

from spikeinit.io import write_text_atomic


def format_table(rows: list[list[str]], notes: tuple[str, ...] | list[str] = ()) -> str:
    """Left-aligned plain-text table: ``rows[0]`` is the header, then a rule, then the rows;
    then one ``note:`` line per note.

    Example:
        >>> print(format_table([["a", "bb"], ["1", "2"]]))
        a  bb
        -  --
        1  2
    """
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines + [f"note: {note}" for note in notes])


def csv_text(rows: list[dict[str, Any]], fields: list[str]) -> str:
    """CSV with a header of ``fields``; ``None`` and NaN as empty cells."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if value is None or (isinstance(value, float)
                                                      and math.isnan(value)) else value
                         for key, value in row.items()})
    return buffer.getvalue()


def fmt(value: float | int | None, digits: int = 3) -> str:
    """A number for a table cell: ``digits`` significant digits, ``-`` for None."""
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "nan"
    return f"{value:.{digits}g}"


class TabularResult:
    """``table()``, ``print()`` and ``to_csv()`` from the class's :meth:`table_rows`,
    :meth:`as_dicts` and :meth:`csv_fields`."""

    def table_rows(self) -> list[list[str]]:
        """Header and rows of the plain-text table."""
        raise NotImplementedError

    def table_notes(self) -> tuple[str, ...]:
        """Lines printed under the table."""
        return tuple(getattr(self, "notes", ()) or ())

    def as_dicts(self) -> list[dict[str, Any]]:
        """One plain dict per row (for JSON and CSV)."""
        raise NotImplementedError

    def csv_fields(self) -> list[str]:
        """The CSV columns."""
        rows = self.as_dicts()
        return list(rows[0]) if rows else []

    def table(self) -> str:
        """The result as a plain-text table."""
        return format_table(self.table_rows(), self.table_notes())

    def print(self, file: TextIO | None = None) -> None:
        """Print :meth:`table`."""
        print(self.table(), file=file)

    def to_csv(self, path: str | Path | None = None) -> str:
        """The rows as CSV text; also written (atomically) to ``path`` when given."""
        text = csv_text(self.as_dicts(), self.csv_fields())
        if path is not None:
            write_text_atomic(Path(path), text)
        return text

    def __str__(self) -> str:
        return self.table()
