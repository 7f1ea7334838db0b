"""Plain-text and CSV output shared by every result: one table format, one CSV writer.

A table shows only the columns that carry information, and the notes of its rows as text
under it, each cited by number in the row's ``notes`` column. :class:`TabularResult` gives
:func:`spikeinit.initialize`'s records, :func:`spikeinit.calibrate`'s result and
:func:`spikeinit.report`'s report the same three methods: :meth:`~TabularResult.table`,
:meth:`~TabularResult.print` and :meth:`~TabularResult.to_csv`.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, TextIO

from spikeinit.io import write_text_atomic

#: Cells that carry no information; a column of nothing else is left out of a table.
EMPTY_CELLS = frozenset({"", "-", "None"})
#: The header of the column that refers to the notes under a table.
NOTES_COLUMN = "notes"


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


def informative_columns(rows: list[list[str]]) -> list[list[str]]:
    """``rows`` (header first) without the columns whose every cell below the header is
    empty, ``-`` or ``None`` (:data:`EMPTY_CELLS`); all of them when there is no row.

    Example:
        >>> informative_columns([["layer", "sigma", "std"], ["a", "-", "0.1"], ["b", "", "0.2"]])
        [['layer', 'std'], ['a', '0.1'], ['b', '0.2']]
    """
    if len(rows) < 2:
        return rows
    keep = [index for index in range(len(rows[0]))
            if any(row[index].strip() not in EMPTY_CELLS for row in rows[1:])]
    return [[row[index] for index in keep] for row in rows]


def with_note_references(rows: list[list[str]], row_notes: list[tuple[str, ...]]
                         ) -> tuple[list[list[str]], list[str]]:
    """Rows whose :data:`NOTES_COLUMN` cites the notes of each row by number, and the notes.

    ``row_notes[i]`` are the notes of ``rows[i + 1]``. Each distinct note gets the number of its
    first appearance (1, 2, ...); a row's cell lists its numbers in increasing order (``-``
    when it has none), and the notes come back as ``[k] text`` lines in that order. The column
    replaces a header cell named ``notes`` (whatever it held), else it is added at the end.

    Example:
        >>> rows, notes = with_note_references([["layer", "notes"], ["a", "2"], ["b", "0"]],
        ...                                    [("pooled", "assumed rate"), ()])
        >>> rows, notes
        ([['layer', 'notes'], ['a', '1, 2'], ['b', '-']], ['[1] pooled', '[2] assumed rate'])
    """
    numbers: dict[str, int] = {}
    for notes in row_notes:
        for note in notes:
            numbers.setdefault(note, len(numbers) + 1)
    header = rows[0]
    column = header.index(NOTES_COLUMN) if NOTES_COLUMN in header else None
    result = [list(header) if column is not None else [*header, NOTES_COLUMN]]
    for row, notes in zip(rows[1:], row_notes):
        cell = ", ".join(str(number) for number in sorted({numbers[note] for note in notes}))
        row = list(row)
        if column is None:
            row.append(cell or "-")
        else:
            row[column] = cell or "-"
        result.append(row)
    return result, [f"[{number}] {note}" for note, number in numbers.items()]


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

    def row_notes(self) -> list[tuple[str, ...]] | None:
        """The notes of each table row, in the order of :meth:`table_rows` (``None``: the rows
        have no notes of their own). By default those of the result's ``layers``, when each
        has a ``notes`` attribute."""
        items = list(getattr(self, "layers", ()))
        if not items or not all(hasattr(item, "notes") for item in items):
            return None
        return [tuple(item.notes) for item in items]

    def as_dicts(self) -> list[dict[str, Any]]:
        """One plain dict per row (for JSON and CSV)."""
        raise NotImplementedError

    def csv_fields(self) -> list[str]:
        """The CSV columns."""
        rows = self.as_dicts()
        return list(rows[0]) if rows else []

    def table(self) -> str:
        """The result as a plain-text table: the rows of :meth:`table_rows` whose columns carry
        information (:func:`informative_columns`), each row's notes cited by number in the
        ``notes`` column and written out under the table (:func:`with_note_references`), then
        :meth:`table_notes`."""
        rows, notes = self.table_rows(), list(self.table_notes())
        row_notes = self.row_notes()
        if row_notes is not None:
            rows, cited = with_note_references(rows, row_notes)
            notes = cited + notes
        return format_table(informative_columns(rows), notes)

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
