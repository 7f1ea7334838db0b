"""The tutorials: run the jupytext sources of ``docs/tutorials`` and make them site pages.

Each tutorial is a jupytext "percent" script, ``docs/tutorials/NN_name.py``. This module

- executes one top to bottom in a fresh Jupyter kernel (jupytext + nbclient), in
  ``docs/tutorials``, with ``SPIKEINIT_TUTORIAL_SIZE`` (``default`` or ``ci``) and
  ``SPIKEINIT_DATA_DIR`` (when unset: ``../shared/data`` beside the repository, if there) in
  its environment; a cell that raises fails the run;
- keeps the executed notebook in ``build/tutorials/<size>/NN_name.ipynb``, keyed by the
  tutorial's source, the size and every source file of ``src/spikeinit``, so a build
  re-executes only what changed;
- renders it as Markdown (code, printed output, figures as PNG files) for MkDocs, with the
  paths of the machine that ran it (the repository, the temporary folders) left out;
- finds what keeps a tutorial from doing what it teaches (:func:`problems`: a part it skipped,
  ``tutorial_data.skipped``, for instance a framework that is not installed, or a warning
  it printed). The page says so at its top, and the hook logs a warning for each, which makes
  ``mkdocs build --strict`` (CI) fail.

As an MkDocs hook (``mkdocs.yml``: ``hooks``) it adds ``tutorials/NN_name.md`` and its figures
to the site, executing the tutorials that have no fresh executed notebook. From the command
line it executes them and prints the time each took::

    SPIKEINIT_TUTORIAL_SIZE=ci python docs/hooks/tutorials.py            # all of them
    python docs/hooks/tutorials.py docs/tutorials/01_silence.py          # one, default size
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import importlib.util
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "docs" / "tutorials"
CACHE = ROOT / "build" / "tutorials"
LIBRARY = ROOT / "src" / "spikeinit"
ENV_SIZE = "SPIKEINIT_TUTORIAL_SIZE"
ENV_DATA = "SPIKEINIT_DATA_DIR"
SIZES = ("default", "ci")
TIMEOUT = 900  # seconds per cell
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: A Python warning as ``warnings`` prints it: ``path:line: SomethingWarning: text``.
_WARNING = re.compile(r"^.*?\b\w*Warning: .*$", re.M)
log = logging.getLogger(f"mkdocs.hooks.{Path(__file__).stem}")


def _helper() -> Any:
    """The tutorials' helper module, ``docs/tutorials/tutorial_data.py``."""
    spec = importlib.util.spec_from_file_location("tutorial_data", SOURCES / "tutorial_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SKIP_MARKER: str = _helper().SKIP_MARKER


def tutorial_sources() -> list[Path]:
    """The tutorials, in their order: ``docs/tutorials/NN_*.py``."""
    return sorted(SOURCES.glob("[0-9][0-9]_*.py"))


def size_from_environment(default: str = "default") -> str:
    """``$SPIKEINIT_TUTORIAL_SIZE`` (``default`` or ``ci``), else ``default``."""
    size = os.environ.get(ENV_SIZE) or default
    if size not in SIZES:
        raise ValueError(f"{ENV_SIZE} must be one of {', '.join(SIZES)}, got {size!r}")
    return size


def _library_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted([*LIBRARY.rglob("*.py"), *LIBRARY.rglob("*.cpp")]):
        digest.update(str(path.relative_to(LIBRARY)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_key(source: Path, size: str) -> str:
    """What an executed notebook depends on: the tutorial and its helpers, the size, the library."""
    digest = hashlib.sha256(size.encode())
    for path in [source, *sorted(SOURCES.glob("[!0-9]*.py"))]:
        digest.update(path.read_bytes())
    digest.update(_library_digest().encode())
    return digest.hexdigest()


def cache_path(source: Path, size: str) -> Path:
    return CACHE / size / f"{source.stem}.ipynb"


def cached(source: Path, size: str) -> Any | None:
    """The executed notebook of ``source`` at ``size`` if it is up to date, else ``None``."""
    import nbformat

    path = cache_path(source, size)
    if not path.is_file():
        return None
    try:
        notebook = nbformat.read(path, as_version=4)
    except Exception:  # noqa: BLE001 - an unreadable cache is re-executed
        return None
    meta = notebook.metadata.get("spikeinit_tutorial", {})
    return notebook if meta.get("key") == cache_key(source, size) else None


def _data_dir() -> str | None:
    given = os.environ.get(ENV_DATA)
    if given:
        return given
    shared = ROOT.parent / "shared" / "data"
    return str(shared) if shared.is_dir() else None


@contextlib.contextmanager
def _environment(values: dict[str, str | None]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def execute(source: Path, size: str, timeout: int = TIMEOUT) -> tuple[Any, float]:
    """Run ``source`` top to bottom at ``size``; the executed notebook (also cached) and the
    seconds it took. Raises nbclient's ``CellExecutionError`` when a cell fails."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    key = cache_key(source, size)  # of what is about to run
    notebook = jupytext.read(source)
    # The kernel runs in a scratch folder (whatever a tutorial writes stays out of the
    # repository) and imports the tutorials' helper from docs/tutorials.
    python_path = os.pathsep.join(filter(None, [str(SOURCES), os.environ.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory(prefix="spikeinit-tutorial-") as scratch:
        client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": scratch}})
        start = time.perf_counter()
        with _environment({ENV_SIZE: size, ENV_DATA: _data_dir(), "PYTHONPATH": python_path,
                           "PYDEVD_DISABLE_FILE_VALIDATION": "1"}):
            client.execute()
        seconds = time.perf_counter() - start
    notebook.metadata["spikeinit_tutorial"] = {"key": key, "size": size,
                                               "seconds": round(seconds, 1)}
    path = cache_path(source, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".ipynb.partial")
    nbformat.write(notebook, partial)
    partial.replace(path)
    return notebook, seconds


def executed(source: Path, size: str) -> Any:
    """The executed notebook: the cached one when fresh, else a new run."""
    notebook = cached(source, size)
    return notebook if notebook is not None else execute(source, size)[0]


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def problems(notebook: Any) -> list[str]:
    """What kept the executed tutorial from doing all it teaches, one line each: the parts
    it skipped (lines of ``tutorial_data.skipped``), the warnings it printed, the errors."""
    found: list[str] = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            kind = output.get("output_type")
            text = _ANSI.sub("", _text(output.get("text", "")))
            if kind == "stream":
                found += [f"skipped {line[len(SKIP_MARKER):].strip()}"
                          for line in text.splitlines() if line.startswith(SKIP_MARKER)]
                found += [f"warned: {_scrub(match.group(0).strip())}"
                          for match in _WARNING.finditer(text)]
            elif kind == "error":
                found.append(f"failed: {output.get('ename')}: {output.get('evalue')}")
    return found


def _scrub(text: str) -> str:
    """``text`` without the paths of the machine that ran the tutorial."""
    for path, shown in ((str(ROOT.parent), ".."), (tempfile.gettempdir(), "<tmp>"),
                        (str(Path.home()), "~")):
        if len(path) > 1:
            text = text.replace(path, shown)
    return text


def _fence(text: str, language: str = "text") -> str:
    text = _scrub(_ANSI.sub("", text)).rstrip("\n")
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}{language}\n{text}\n{fence}"


def _fence_free(text: str) -> str:
    return text.replace("`", "'")


def render(notebook: Any, source: Path) -> tuple[str, dict[str, bytes]]:
    """Markdown of an executed tutorial, and its figures (``{file name: PNG bytes}``).

    Cell tags (jupytext: ``# %% tags=["remove-input"]``): ``remove-cell`` leaves the cell out,
    ``remove-input`` shows only its output, ``remove-output`` only its code.
    """
    stem = source.stem
    parts: list[str] = []
    images: dict[str, bytes] = {}
    meta = notebook.metadata.get("spikeinit_tutorial", {})
    note = (f"*Executed with `{ENV_SIZE}={meta.get('size', '?')}` in "
            f"{meta.get('seconds', '?')} s. Source: [`{source.name}`]({source.name}), "
            "a jupytext notebook (`jupytext --to notebook` opens it in Jupyter).*")
    noted = False
    found = problems(notebook)
    for index, cell in enumerate(notebook.cells):
        tags = set(cell.get("metadata", {}).get("tags", []))
        if "remove-cell" in tags:
            continue
        if cell.cell_type == "markdown":
            parts.append(_text(cell.source))
            if not noted:
                parts.append(note)
                if found:
                    parts.append('!!! warning "This page did not run in full"\n\n'
                                 + "\n".join(f"    - {_fence_free(line)}" for line in found))
                noted = True
            continue
        if cell.cell_type != "code":
            continue
        if "remove-input" not in tags and _text(cell.source).strip():
            parts.append(_fence(_text(cell.source), "python"))
        if "remove-output" in tags:
            continue
        streams: list[str] = []  # consecutive stream outputs make one block
        for output in cell.get("outputs", []):
            kind = output.get("output_type")
            if kind == "stream":
                streams.append(_text(output.get("text", "")))
                continue
            if streams:
                parts.append(_fence("".join(streams)))
                streams = []
            data = output.get("data", {})
            if "image/png" in data:
                name = f"{stem}_files/{stem}_{index:02d}_{len(images):02d}.png"
                images[name] = base64.b64decode(_text(data["image/png"]))
                parts.append(f"![Figure {len(images)} of {stem}]({name})")
            elif "text/markdown" in data:
                parts.append(_text(data["text/markdown"]))
            elif "text/html" in data:
                parts.append(f'<div class="output-html">\n{_text(data["text/html"])}\n</div>')
            elif "text/plain" in data:
                parts.append(_fence(_text(data["text/plain"])))
            elif kind == "error":
                parts.append(_fence("\n".join(output.get("traceback", []))))
        if streams:
            parts.append(_fence("".join(streams)))
    return "\n\n".join(parts) + "\n", images


# ---- MkDocs hook --------------------------------------------------------------------------


def on_files(files: Any, config: Any) -> Any:
    """Add every tutorial's page and figures (executing those without a fresh notebook)."""
    from mkdocs.structure.files import File

    size = size_from_environment()
    for source in tutorial_sources():
        notebook = executed(source, size)
        for problem in problems(notebook):
            log.warning(f"tutorial {source.name}: {problem}")
        markdown, images = render(notebook, source)
        files.append(File.generated(config, f"tutorials/{source.stem}.md", content=markdown))
        for name, data in images.items():
            files.append(File.generated(config, f"tutorials/{name}", content=data))
    return files


# ---- command line -------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Execute the tutorials and time them.")
    parser.add_argument("sources", nargs="*", type=Path,
                        help="tutorials to run (default: all of docs/tutorials)")
    parser.add_argument("--size", choices=SIZES, default=None,
                        help=f"default: ${ENV_SIZE}, else 'default'")
    args = parser.parse_args(argv)
    size = args.size or size_from_environment()
    failed = 0
    for source in [path.resolve() for path in args.sources] or tutorial_sources():
        try:
            _, seconds = execute(source, size)
        except Exception as error:  # noqa: BLE001 - report every tutorial, then fail
            failed += 1
            print(f"FAILED  {source.name} ({size}): {type(error).__name__}: "
                  f"{str(error)[-2000:]}", flush=True)
        else:
            print(f"ok      {source.name} ({size}): {seconds:.1f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
