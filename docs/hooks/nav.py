"""MkDocs hook: a page of ``docs/`` that mkdocs.yml's nav does not list still gets a nav entry.

Top-level ``docs/*.md`` pages missing from the nav are appended under "More pages", so a new
page is reachable from the site as soon as it exists (list it in mkdocs.yml's nav to place it).
"""

from __future__ import annotations

from typing import Any

from mkdocs.structure.nav import Section
from mkdocs.structure.pages import Page

SECTION = "More pages"


def on_nav(nav: Any, config: Any, files: Any) -> Any:
    listed = {page.file.src_uri for page in nav.pages}
    extra = []
    for file in files.documentation_pages():
        if "/" in file.src_uri or file.src_uri in listed:
            continue
        page = file.page if file.page is not None else Page(None, file, config)
        extra.append(page)
    if extra:
        section = Section(SECTION, extra)
        for page in extra:
            page.parent = section
        nav.items.append(section)
        nav.pages.extend(extra)
    return nav
