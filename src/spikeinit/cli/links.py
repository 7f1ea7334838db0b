"""Where the project lives online: the pages that help texts and command output point to.

A pip user has no ``docs/`` folder, so every pointer to a documentation page is a URL.
"""

from __future__ import annotations

import re

#: The repository (its issues are :data:`spikeinit.errors.BUG_REPORT_URL`).
REPOSITORY_URL = "https://github.com/spikeinit/spikeinit"
#: The documentation pages, as the repository shows them.
DOCS_URL = f"{REPOSITORY_URL}/blob/main/docs"

_DOCS_PATH = re.compile(r"\bdocs/([\w./-]*\w\.md)")


def docs_page(name: str) -> str:
    """The URL of the documentation page ``name`` (e.g. ``results.md``).

    Example:
        >>> docs_page("results.md")
        'https://github.com/spikeinit/spikeinit/blob/main/docs/results.md'
    """
    return f"{DOCS_URL}/{name}"


def link_docs_paths(text: str) -> str:
    """``text`` with every repository path ``docs/<page>.md`` replaced by the page's URL.

    Example:
        >>> link_docs_paths("trains best, docs/operating-point.md)")
        'trains best, https://github.com/spikeinit/spikeinit/blob/main/docs/operating-point.md)'
    """
    return _DOCS_PATH.sub(lambda match: docs_page(match.group(1)), text)
