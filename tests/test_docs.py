"""The documentation's quick checks (the site build and the browser: test_docs_site.py).

- every page of mkdocs.yml's nav exists (a tutorial page is made from its jupytext source);
- README installs from PyPI first, keeps its two from-a-clone commands (the install page
  repeats them), and its links are URLs to files that exist;
- the code on the home and methods pages runs;
- every public function and class of the API reference has a docstring with an example; the
  examples themselves run as doctests (see ``testpaths``);
- the docstring converter of the site (docs/hooks/griffe_sphinx.py) reads the roles.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import io
import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
QUICK_START = (
    'pip install -e . && spikeinit propagate --out runs/propagate\n'
    'pip install -e ".[test]" && python -m pytest\n'
)
#: The modules of the API reference (docs/api/*.md); for a package, the names in __all__.
API_MODULES = ("spikeinit", "spikeinit.theory", "spikeinit.theory.temporal",
               "spikeinit.theory.temporal_gain", "spikeinit.theory.gradients",
               "spikeinit.theory.attention", "spikeinit.theory.recurrent", "spikeinit.errors",
               "spikeinit.init",
               "spikeinit.neurons", "spikeinit.models", "spikeinit.data", "spikeinit.adapters",
               "spikeinit.calibration", "spikeinit.health")


def nav_pages() -> list[str]:
    yaml = pytest.importorskip("yaml", reason="pyyaml is in the test extra")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, str):
            pages.append(node)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)

    walk(config["nav"])
    return pages


def test_every_nav_page_exists() -> None:
    for page in nav_pages():
        source = DOCS / page
        if page.startswith("tutorials/") and page != "tutorials/index.md":
            source = source.with_suffix(".py")  # docs/hooks/tutorials.py renders it
        assert source.is_file(), f"mkdocs.yml's nav lists {page}, but {source} is missing"


def test_every_tutorial_is_in_the_nav() -> None:
    listed = set(nav_pages())
    tutorials = sorted(DOCS.glob("tutorials/[0-9][0-9]_*.py"))
    assert len(tutorials) >= 5
    for source in tutorials:
        assert f"tutorials/{source.stem}.md" in listed, source.name
        text = source.read_text()
        assert "format_name: percent" in text, f"{source.name} is not a jupytext percent script"
        assert "pick(" in text, f"{source.name} has no CI size (tutorial_data.pick)"


def test_readme_keeps_its_quick_start_and_install_repeats_it() -> None:
    readme = (ROOT / "README.md").read_text()
    assert f"```bash\n{QUICK_START}```" in readme
    assert f"```bash\n{QUICK_START}```" in (DOCS / "install.md").read_text()
    assert f"```bash\n{QUICK_START}```" in (DOCS / "index.md").read_text()


def test_readme_quick_start_installs_from_pypi() -> None:
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start\n", 1)[1]
    assert quick_start.lstrip().startswith("```bash\npip install spikeinit\n")


def test_readme_links_are_absolute_and_resolve() -> None:
    """README is also the PyPI page, where a relative link leads nowhere: every link is a URL,
    and those into the repository name files that exist."""
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", readme)
    relative = [t for t in targets if not re.match(r"[a-z]+:", t)]
    assert not relative, f"README has relative links: {relative}"
    repository = re.compile(r"https://(?:github\.com/spikeinit/spikeinit/(?:blob|tree)/main|"
                            r"raw\.githubusercontent\.com/spikeinit/spikeinit/main)/([^#]+)")
    paths = [match.group(1) for t in targets if (match := repository.match(t))]
    assert any(p.startswith("docs/") for p in paths), "README links to no page of the site"
    for path in paths:
        assert (ROOT / path).exists(), f"README links to missing {path}"


@pytest.mark.parametrize("page", ["index.md", "methods.md"])
def test_page_examples_run(page: str) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), flags=re.S)
    assert blocks
    torch.manual_seed(0)
    for block in blocks:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(block, f"docs/{page}", "exec"), {})


def public_objects() -> dict[str, object]:
    found: dict[str, object] = {}
    for name in API_MODULES:
        module = importlib.import_module(name)
        names = getattr(module, "__all__", None)
        if names is None:
            names = [n for n, obj in vars(module).items()
                     if not n.startswith("_") and getattr(obj, "__module__", None) == name]
        for attribute in names:
            obj = getattr(module, attribute)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return found


def test_public_api_has_docstrings_with_examples() -> None:
    objects = public_objects()
    undocumented = sorted(path for path, obj in objects.items() if not inspect.getdoc(obj))
    assert not undocumented, f"no docstring: {undocumented}"
    missing = sorted(path for path, obj in objects.items()
                     if ">>>" not in (inspect.getdoc(obj) or ""))
    assert not missing, f"public API without an example (add one; doctests run): {missing}"


def test_site_reads_the_sphinx_roles_of_the_docstrings() -> None:
    if importlib.util.find_spec("griffe") is None:
        pytest.skip("griffe is not installed (pip install -e '.[docs]')")
    spec = importlib.util.spec_from_file_location("griffe_sphinx",
                                                  DOCS / "hooks" / "griffe_sphinx.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.convert(
        "The map :math:`g\\,Q(\\theta/\\sigma)` of :func:`~spikeinit.theory.fixed_point`::\n"
        "\n"
        "    code\n"
        "\n"
        ".. math::\n"
        "\n"
        "    x = 1\n"
        "\n"
        "Example:\n"
        "    >>> 1\n"
        "    1\n")
    assert "\\(g\\,Q(\\theta/\\sigma)\\)" in text
    assert ('<autoref identifier="spikeinit.theory.fixed_point" optional>'
            "<code>fixed_point</code></autoref>:") in text
    assert "$$\nx = 1\n$$" in text
    assert "\nExamples:\n    >>> 1" in text


def tutorials_hook():  # noqa: ANN201 - the module docs/hooks/tutorials.py
    spec = importlib.util.spec_from_file_location("docs_tutorials", DOCS / "hooks" / "tutorials.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_tutorial_that_skips_or_warns_is_flagged_on_its_page() -> None:
    """docs/hooks/tutorials.py finds the parts a tutorial skipped and the warnings it printed,
    shows them at the top of the page and leaves out the paths of the machine."""
    nbformat = pytest.importorskip("nbformat", reason="the docs extra")
    hook = tutorials_hook()
    skipped = f"{hook.SKIP_MARKER}the norse network: norse is not installed"
    warning = (f"{hook.ROOT}/src/x.py:3: UserWarning: kernel built in "
               f"{hook.tempfile.gettempdir()}/abc")
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 1. A tutorial"),
        nbformat.v4.new_code_cell("run()", outputs=[
            nbformat.v4.new_output("stream", name="stdout", text=f"frameworks found: none\n"
                                                                 f"{skipped}\n"),
            nbformat.v4.new_output("stream", name="stderr", text=warning + "\n")]),
    ])
    found = hook.problems(notebook)
    assert found == ["skipped the norse network: norse is not installed",
                     "warned: ../wt-package/src/x.py:3: UserWarning: kernel built in <tmp>/abc"
                     .replace("wt-package", hook.ROOT.name)]
    markdown, _ = hook.render(notebook, DOCS / "tutorials" / "01_silence.py")
    assert markdown.startswith("# 1. A tutorial")
    assert '!!! warning "This page did not run in full"' in markdown
    assert str(hook.ROOT) not in markdown and hook.tempfile.gettempdir() + "/" not in markdown
    clean = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("ok()", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="all frameworks\n")])])
    assert hook.problems(clean) == []


def drawn_files(layout: str) -> set[str]:
    """The files the ``text`` drawing of ``docs/layout.md`` names under ``src/spikeinit/``: each
    level of the tree is indented by four characters (``├── ``, ``│   ``, ``└── `` or spaces)."""
    block = layout.split("```text\nsrc/spikeinit/\n", 1)[1].split("```", 1)[0]
    files: set[str] = set()
    folders: list[str] = []
    for line in block.splitlines():
        name_at = next(i for i, char in enumerate(line) if char not in "│├└─ ")
        depth = name_at // 4 - 1
        name = line[name_at:].split()[0]
        folders[depth:] = [name]
        if not name.endswith("/"):
            files.add("".join(folders))
    return files


def test_the_layout_drawing_names_every_file_of_the_package_and_no_other() -> None:
    package = ROOT / "src" / "spikeinit"
    on_disk = {str(path.relative_to(package)) for path in package.rglob("*")
               if path.suffix in (".py", ".cpp") and path.name != "__init__.py"
               and "__pycache__" not in path.parts}
    drawn = drawn_files((ROOT / "docs" / "layout.md").read_text())
    assert not on_disk - drawn, f"not in docs/layout.md's drawing: {sorted(on_disk - drawn)}"
    assert not drawn - on_disk, f"drawn but not in the tree: {sorted(drawn - on_disk)}"


def test_the_drawing_reader_follows_the_indentation() -> None:
    drawing = ("```text\nsrc/spikeinit/\n├── io.py      writes\n├── engine/    bottom\n"
               "│   ├── gemm.py  mm\n│   └── kernels/  c++\n│       └── abi.py  abi\n"
               "└── cli/  command\n    └── main.py  parser\n```\n")
    assert drawn_files(drawing) == {"io.py", "engine/gemm.py", "engine/kernels/abi.py",
                                    "cli/main.py"}


def test_the_layout_arrows_are_the_imports_of_the_code() -> None:
    from test_architecture import package_graph

    layout = (ROOT / "docs" / "layout.md").read_text()
    block = layout.split("## The arrows", 1)[1].split("```text\n", 1)[1]
    drawn = {}
    for line in block.split("```", 1)[0].splitlines():
        name, imported = (part.strip() for part in line.split("->"))
        drawn[name] = set() if imported == "(nothing)" else set(imported.split(", "))
    actual = {name: imported for name, imported in package_graph().items()}
    assert drawn == actual
