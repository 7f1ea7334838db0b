"""Helpers shared by the framework adapters (no framework is imported here)."""

from __future__ import annotations

from torch import nn


def defined_in(module: nn.Module, package: str) -> bool:
    """Whether ``module``'s class or one of its bases comes from ``package`` (e.g. ``snntorch``).

    It reads ``__module__`` strings only, so it never imports ``package``.
    """
    return any(cls.__module__.split(".")[0] == package for cls in type(module).__mro__)


def framework_class(module: nn.Module, package: str) -> type | None:
    """The most derived class of ``module`` that ``package`` itself defines."""
    for cls in type(module).__mro__:
        if cls.__module__.split(".")[0] == package:
            return cls
    return None


def subclass_note(module: nn.Module, base: type) -> list[str]:
    """A note when ``module`` is a user subclass of the framework class ``base``."""
    if type(module) is base:
        return []
    return [f"{type(module).__name__} subclasses {base.__name__}: assumed to keep its dynamics"]


def supported_kind(module: nn.Module, framework: str, namespace: object,
                   supported: tuple[str, ...]) -> tuple[str, list[str]]:
    """``(kind, notes)``: which of the ``supported`` class names of ``namespace`` (the
    framework's module holding them) ``module`` is, with a note when it is a user subclass.

    Raises :class:`~spikeinit.adapters.description.UnsupportedNeuronError` naming the
    supported kinds otherwise.
    """
    from spikeinit.adapters.description import UnsupportedNeuronError

    base = framework_class(module, framework)
    kinds = {getattr(namespace, name): name for name in supported if hasattr(namespace, name)}
    if base not in kinds:
        name = base.__name__ if base is not None else type(module).__name__
        raise UnsupportedNeuronError(
            f"{framework} {name} is not supported (supported: {', '.join(supported)})")
    return kinds[base], subclass_note(module, base)
