"""Structured notes: what the graph, the initializers and the calibration found about a layer.

A :class:`Note` is a ``str`` (its text, with the layer's name in front when there is one), so it
prints and compares as text, and it carries a ``kind`` and a ``layer`` so that code decides
by kind, never by matching message text.
"""

from __future__ import annotations

from spikeinit.errors import InvalidArgumentError

#: ``modelled``: an operation the theory takes into account; ``unmodelled``: one it does not
#: (calibrate measures it); ``measured``: a statistic read from the sample; ``assumed``: a
#: fallback where the sample gave nothing usable; ``branch``: a tensor used by several layers;
#: ``data-driven``: a population fed by the data directly (nothing to calibrate); ``skipped``: a
#: layer left unchanged, with why; ``internal``: a weight layer inside a neuron.
NOTE_KINDS = ("modelled", "unmodelled", "measured", "assumed", "branch", "data-driven",
              "skipped", "internal")


class Note(str):
    """A note of ``kind`` (one of :data:`NOTE_KINDS`) about ``layer`` (or the whole model).

    Example:
        >>> note = Note("unmodelled", "pool", "max-pool before the layer: not modelled")
        >>> note.kind, note.layer, str(note)
        ('unmodelled', 'pool', 'max-pool before the layer: not modelled')
        >>> note.qualified()
        'pool: max-pool before the layer: not modelled'
    """

    kind: str
    layer: str | None
    text: str

    def __new__(cls, kind: str, layer: str | None, text: str) -> Note:
        if kind not in NOTE_KINDS:
            raise InvalidArgumentError(f"kind must be one of {NOTE_KINDS}, got {kind!r}")
        note = super().__new__(cls, text)
        note.kind, note.layer, note.text = kind, layer, text
        return note

    def __reduce__(self) -> tuple:
        return (Note, (self.kind, self.layer, self.text))

    def qualified(self) -> str:
        """The text with the layer's name in front (``layer: text``)."""
        return f"{self.layer}: {self.text}" if self.layer else self.text


def of_kind(notes: object, *kinds: str) -> list[Note]:
    """The :class:`Note` s among ``notes`` whose kind is one of ``kinds``."""
    return [note for note in notes if isinstance(note, Note) and note.kind in kinds]
