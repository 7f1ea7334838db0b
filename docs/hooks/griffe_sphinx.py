"""Griffe extension: read spikeinit's Sphinx-flavoured docstrings as Markdown.

The docstrings are Google style with reStructuredText inside (``:func:`x```, ``:math:`x```,
``.. math::`` blocks, ``Example:`` sections). Before mkdocstrings renders them, this extension
rewrites, in every docstring of the package:

- ``Example:`` section headers as ``Examples:``, so that griffe renders the ``>>>`` lines as
  code (griffe's Google parser knows only the plural);
- ``:math:`x``` as ``\\(x\\)`` and ``.. math::`` blocks as ``$$ ... $$`` (pymdownx.arithmatex
  keeps them intact; ``docs/hooks/mathml.py`` turns them into MathML);
- ``:func:``, ``:class:``, ``:meth:``, ``:mod:``, ``:data:``, ``:attr:``, ``:exc:`` and ``:obj:``
  roles as optional cross-references (a link where the target is in the API reference, plain
  code elsewhere);
- a paragraph's closing ``::`` as ``:`` (the indented block after it stays a code block).

Loaded by mkdocs.yml (``extensions: [docs/hooks/griffe_sphinx.py]``); the sources are not
changed.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(func|class|meth|mod|data|attr|exc|obj|const):`([^`]+)`")
_MATH = re.compile(r":math:`([^`]+)`")
_DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*(?P<rest>.*)$")
_EXAMPLE = re.compile(r"^(?P<indent>[ \t]*)Example:[ \t]*$")
_LITERAL = re.compile(r"^(?P<text>.*\S)::[ \t]*$")


def _math_blocks(lines: list[str]) -> list[str]:
    """``.. math::`` and its indented body as a ``$$`` block at the directive's indent."""
    out: list[str] = []
    index = 0
    while index < len(lines):
        match = _DIRECTIVE.match(lines[index])
        if match is None:
            out.append(lines[index])
            index += 1
            continue
        indent = match["indent"]
        body = [match["rest"]] if match["rest"].strip() else []
        index += 1
        while index < len(lines) and (not lines[index].strip()
                                      or len(lines[index]) - len(lines[index].lstrip())
                                      > len(indent)):
            body.append(lines[index].strip())
            index += 1
        formula = " ".join(line for line in body if line)
        out += [f"{indent}$$", f"{indent}{formula}", f"{indent}$$", ""]
    return out


def _resolver(package: griffe.Module, module_path: str) -> Any:
    def resolve(target: str) -> str:
        """The dotted path of ``target`` as written in a docstring of ``module_path``."""
        target = target.lstrip("~.").strip()
        if target.endswith("()"):
            target = target[:-2]
        candidates = [target] if target.startswith(package.name + ".") else [
            f"{module_path}.{target}", f"{package.name}.{target}", target]
        for candidate in candidates:
            if not candidate.startswith(package.name + "."):
                continue
            try:
                found = package[candidate[len(package.name) + 1:]]
                return str(found.canonical_path)  # where it is defined: the anchor's name
            except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
                continue
        return target
    return resolve


def convert(text: str, resolve: Any = lambda target: target.lstrip("~.")) -> str:
    """One docstring, reStructuredText roles and directives as Markdown."""
    lines = _math_blocks(text.splitlines())
    converted = []
    for line in lines:
        example = _EXAMPLE.match(line)
        if example is not None:
            line = f"{example['indent']}Examples:"
        elif line.strip() == "::":
            line = ""
        else:
            literal = _LITERAL.match(line)
            if literal is not None and not literal["text"].rstrip().endswith(".."):
                line = f"{literal['text']}:"
        converted.append(line)
    text = "\n".join(converted)
    text = _MATH.sub(lambda m: f"\\({m[1]}\\)", text)

    def role(match: re.Match[str]) -> str:
        written = match[2].strip()
        if "<" in written and written.endswith(">"):  # "title <target>"
            title, target = written[:-1].split("<", 1)
            title = title.strip()
        else:
            target = written
            title = written.lstrip("~.").rsplit(".", 1)[-1] if written.startswith("~") \
                else written.lstrip(".")
        identifier = html.escape(resolve(target), quote=True)
        return (f'<autoref identifier="{identifier}" optional>'
                f"<code>{html.escape(title)}</code></autoref>")

    return _ROLE.sub(role, text)


class SphinxDocstrings(griffe.Extension):
    """Rewrite every docstring of a loaded package (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        seen: set[int] = set()

        def visit(obj: griffe.Object) -> None:
            if id(obj) in seen:
                return
            seen.add(id(obj))
            if obj.docstring is not None:
                module = obj if obj.is_module else obj.module
                obj.docstring.value = convert(obj.docstring.value,
                                              _resolver(pkg, module.path))
            for member in obj.members.values():
                if not member.is_alias:
                    visit(member)

        visit(pkg)
