"""MkDocs hook: render the formulas of every page as MathML, at build time.

pymdownx.arithmatex (``generic: true``) leaves ``\\(...\\)`` and ``\\[...\\]`` in
``<span class="arithmatex">`` / ``<div class="arithmatex">``; this hook replaces each by the
MathML of ``latex2mathml``, which browsers draw natively: no script, nothing fetched, so the
offline site shows its formulas. A formula latex2mathml cannot read stays as TeX in a
``<code>`` element (logged at INFO).
"""

from __future__ import annotations

import html
import logging
import re
from typing import Any

from latex2mathml.converter import convert

log = logging.getLogger("mkdocs.hooks.mathml")

_INLINE = re.compile(r'<span class="arithmatex">\\\((.*?)\\\)</span>', re.S)
_BLOCK = re.compile(r'<div class="arithmatex">\\\[(.*?)\\\]</div>', re.S)


def mathml(tex: str, display: str) -> str:
    """The MathML of ``tex`` (HTML-escaped, as arithmatex writes it)."""
    source = html.unescape(tex).strip()
    try:
        return convert(source, display=display)
    except Exception as error:  # noqa: BLE001 - any parser failure keeps the TeX
        log.info("formula kept as TeX (%s): %s", type(error).__name__, source)
        return f"<code>{html.escape(source)}</code>"


def on_page_content(html_text: str, **kwargs: Any) -> str:
    html_text = _BLOCK.sub(lambda m: f'<div class="math">{mathml(m[1], "block")}</div>',
                           html_text)
    return _INLINE.sub(lambda m: mathml(m[1], "inline"), html_text)
