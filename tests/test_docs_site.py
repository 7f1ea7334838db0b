"""The built site, opened in a real browser.

Headless Chromium (Debian's ``chromium``, which ``.ci/run`` installs) loads the home page,
tutorial 1 and the API page of ``spikeinit`` from a local HTTP server over the built site
(``site/``, built here with ``mkdocs build --strict`` when it is missing). For each page it
checks, in the DOM after the page's scripts ran, the title and the heading, that the figures
are there and their files are PNGs of the site, that the formulas were rendered (MathML), and
that every internal link, anchor, stylesheet and script resolves to a file (and an ``id``) of
the built site. A screenshot of each page is kept in ``test-artifacts/screenshots/``.

On every page of the site at 1280 px, no code block is wider than its box (a horizontal
scrollbar would hide its end), and every tutorial's figures contain data: coloured marks,
not only an empty frame of axes.

Marked ``slow`` and ``docs`` (``.ci/run``: ``python -m pytest -m docs tests/test_docs_site.py``);
without Chromium, or without the ``docs`` extra to build the site, it skips with the reason.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "site"
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
#: Why Chromium is missing, when .ci/run could not install it.
INSTALL_LOG = ROOT / "test-artifacts" / "chromium-install.log"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: name -> (path in the site, words of the <title>, words of the <h1>)
PAGES = {
    "home": ("index.html", "spikeinit", "spikeinit"),
    "tutorial": ("tutorials/01_silence/index.html", "Why deep SNNs go silent",
                 "1. Why deep SNNs go silent"),
    "api": ("api/spikeinit/index.html", "spikeinit", "spikeinit"),
}

pytestmark = [pytest.mark.slow, pytest.mark.docs]


class Page(HTMLParser):
    """What the checks need from one HTML document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.h1: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.resources: list[str] = []
        self.ids: set[str] = set()
        self.math = 0
        self._in: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if "id" in values:
            self.ids.add(values["id"])
        if tag in ("title", "h1"):
            self._in.append(tag)
            if tag == "h1":
                self.h1.append("")
        elif tag == "img":
            self.images.append(values.get("src", ""))
        elif tag == "a" and "href" in values:
            self.links.append(values["href"])
        elif tag == "link" and values.get("rel") in ("stylesheet", "icon") and "href" in values:
            self.resources.append(values["href"])
        elif tag == "script" and values.get("src"):
            self.resources.append(values["src"])
        elif tag == "math":
            self.math += 1

    def handle_endtag(self, tag: str) -> None:
        if self._in and self._in[-1] == tag:
            self._in.pop()

    def handle_data(self, data: str) -> None:
        if "title" in self._in:
            self.title += data
        elif "h1" in self._in:
            self.h1[-1] += data


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    return page


def browser() -> str:
    given = os.environ.get("SPIKEINIT_CHROMIUM")
    found = given or next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if found is None:
        reason = "Chromium is not installed (.ci/run: apt-get install chromium)"
        if INSTALL_LOG.is_file():
            lines = [line for line in INSTALL_LOG.read_text().splitlines() if line.strip()]
            reason += f"; the install said: {' | '.join(lines[-3:])}"
        pytest.skip(reason)
    return found


@pytest.fixture(scope="module")
def site() -> Path:
    if not (SITE / "index.html").is_file():
        if importlib.util.find_spec("mkdocs") is None:
            pytest.skip("no built site and no mkdocs to build it (pip install -e '.[docs]')")
        subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict"], cwd=ROOT,
                       check=True, timeout=1800)
    return SITE


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[str]:
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


def chromium(executable: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [executable, "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-dev-shm-usage", "--no-first-run", "--hide-scrollbars",
               f"--user-data-dir={profile}", "--virtual-time-budget=5000", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stderr[-2000:]}"
    return result


def site_file(url: str, base: str) -> Path:
    """The file of the built site that ``url`` (absolute, on the local server) serves."""
    path = unquote(urlsplit(url).path)[len(urlsplit(base).path):]
    target = SITE / path
    if path == "" or path.endswith("/") or target.is_dir():
        target = target / "index.html"
    return target


@functools.cache
def ids_of(path: Path) -> frozenset[str]:
    return frozenset(parse(path.read_text(errors="replace")).ids)


@pytest.mark.parametrize("name", list(PAGES))
def test_page_renders_in_chromium(name: str, server: str, tmp_path: Path) -> None:
    executable = browser()
    path, title, heading = PAGES[name]
    url = urljoin(server, path.removesuffix("index.html"))
    dom = chromium(executable, tmp_path / "profile", "--dump-dom", url).stdout
    page = parse(dom)

    assert title in page.title, f"{name}: title {page.title!r}"
    assert any(heading in h1.strip() for h1 in page.h1), f"{name}: headings {page.h1}"

    figures = [src for src in page.images if src.endswith(".png")]
    if name in ("home", "tutorial"):
        assert figures, f"{name}: no figure"
    if name == "tutorial":
        assert len(figures) >= 2, f"tutorial 1 shows {len(figures)} figures"
    for src in figures:
        file = site_file(urljoin(url, src), server)
        assert file.is_file(), f"{name}: figure {src} is not in the site"
        assert file.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{name}: {src} is no PNG"
    if name in ("tutorial", "api"):
        assert page.math, f"{name}: no formula rendered as MathML"
    if name == "api":
        for anchor in ("spikeinit.initialize", "spikeinit.calibrate", "spikeinit.report",
                       "spikeinit.spike_normal_"):
            assert anchor in page.ids, f"the API page has no entry {anchor}"

    broken = []
    for href in page.links + page.resources:
        absolute = urljoin(url, href)
        if not absolute.startswith(server):
            continue  # another site (GitHub, the paper)
        target = site_file(absolute, server)
        fragment = unquote(urlsplit(absolute).fragment)
        if not target.is_file():
            broken.append(f"{href} (no {target.relative_to(SITE)})")
        elif fragment and target == site_file(url, server):
            if fragment not in page.ids:
                broken.append(f"{href} (no id {fragment!r} on the page)")
        elif fragment and target.suffix == ".html" and fragment not in ids_of(target):
            broken.append(f"{href} (no id {fragment!r} in {target.relative_to(SITE)})")
    assert not broken, f"{name}: broken internal links: {broken}"

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / f"{name}.png"
    shot.unlink(missing_ok=True)
    chromium(executable, tmp_path / "profile-shot", "--window-size=1280,1800",
             f"--screenshot={shot}", url)
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = pytest.importorskip("PIL.Image", reason="Pillow (test extra) checks the screenshot")
    with image.open(shot) as picture:
        colours = picture.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is None or len(colours) > 50, f"{name}: the screenshot looks blank"


#: Loads every page given in ``?pages=`` in a 1280 px wide frame of the same origin and writes,
#: once all have loaded, one line per code block wider than its box into ``#result``.
OVERFLOW_CHECKER = """<!doctype html><html><body><pre id="result">pending</pre><script>
const pages = new URLSearchParams(location.search).get("pages").split(",");
const found = []; let left = pages.length;
for (const page of pages) {
  const frame = document.createElement("iframe");
  frame.style.width = "1280px"; frame.style.height = "900px";
  frame.onload = () => {
    frame.contentDocument.querySelectorAll("pre > code").forEach((code, index) => {
      const box = code.parentElement;
      if (code.scrollWidth > box.clientWidth + 1) {
        found.push(page + " block " + index + ": " + code.scrollWidth + " > " + box.clientWidth);
      }
    });
    if (--left === 0) document.getElementById("result").textContent = found.join("\\n") || "ok";
  };
  frame.src = page; document.body.appendChild(frame);
}
</script></body></html>"""


def site_pages() -> list[str]:
    return sorted(str(path.relative_to(SITE).parent) + "/" for path in SITE.rglob("index.html")
                  if "assets" not in path.parts and path.parent != SITE) + [""]


def test_no_code_block_overflows_at_1280_px(server: str, tmp_path: Path) -> None:
    executable = browser()
    checker = SITE / "_overflow_check.html"
    checker.write_text(OVERFLOW_CHECKER)
    try:
        pages = site_pages()
        url = urljoin(server, "_overflow_check.html") + "?pages=" + ",".join(
            "/" + page for page in pages)
        dom = chromium(executable, tmp_path / "profile", "--window-size=1400,1000",
                       "--virtual-time-budget=30000", "--dump-dom", url).stdout
    finally:
        checker.unlink(missing_ok=True)
    result = dom.split('<pre id="result">', 1)[1].split("</pre>", 1)[0]
    assert result == "ok", f"code blocks wider than their box at 1280 px:\n{result}"


def has_data(png: Path) -> bool:
    """Whether a figure holds coloured marks: at least 0.2 % of its pixels are clearly not grey
    (matplotlib draws empty axes, ticks and text in greys; lines, markers and maps in colour)."""
    image = pytest.importorskip("PIL.Image", reason="Pillow (test extra) reads the figures")
    with image.open(png) as picture:
        pixels = np.asarray(picture.convert("RGB"), dtype=np.int16)
    spread = pixels.max(axis=-1) - pixels.min(axis=-1)
    return int((spread > 60).sum()) >= 0.002 * spread.size


def test_every_tutorial_figure_contains_data(server: str, tmp_path: Path) -> None:
    executable = browser()
    tutorials = sorted(path.parent
                       for path in (SITE / "tutorials").glob("[0-9][0-9]_*/index.html"))
    assert len(tutorials) >= 6
    empty = []
    for folder in tutorials:
        url = urljoin(server, f"tutorials/{folder.name}/")
        page = parse(chromium(executable, tmp_path / "profile", "--dump-dom", url).stdout)
        figures = [src for src in page.images if src.endswith(".png")]
        assert figures, f"{folder.name} shows no figure"
        empty += [f"{folder.name}: {src}" for src in figures
                  if not has_data(site_file(urljoin(url, src), server))]
    assert not empty, f"figures without data: {empty}"
