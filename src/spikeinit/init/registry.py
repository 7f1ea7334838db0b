"""The registry of named initialization methods (``paper``, ``kaiming``, ...)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from spikeinit.errors import InvalidArgumentError
from spikeinit.init.context import LayerContext

Statistics = tuple[float, float]
StatisticsFn = Callable[[LayerContext, Mapping[str, Any]], Statistics]
SamplerFn = Callable[[Tensor, LayerContext, Mapping[str, Any], "torch.Generator | None"], None]


@dataclass(frozen=True)
class InitMethod:
    r"""A named initialization: the weight mean and variance it gives a layer, and how to draw.

    ``statistics(ctx, options)`` returns ``(mean, variance)`` of one weight; the mean-field
    predictions use it. ``sampler`` overrides the default Gaussian draw (e.g. orthogonal).
    ``bias_sampler`` fills the bias; the default sets it to zero.

    ``operating_point(theta)`` is the target membrane std :math:`\sigma` that
    :func:`~spikeinit.init.model.initialize` gives each population of effective threshold
    ``theta`` when no ``sigma`` is passed (``None``: :math:`\sigma = 1`, the paper's),
    ``operating_rule`` says in words how it is chosen, and ``operating_layers`` whether it
    applies to every population (``"all"``) or only to the network's first one (``"first"``:
    the temporal methods, whose other layers follow from the temporal theory).
    ``sigma_option`` names the method's own option that sets that :math:`\sigma`, if any.

    ``norm_sigma(ctx, options)``, when set, is the current std the method wants for neurons
    behind a normalization (BatchNorm in training mode hides the synaptic layer's scale):
    :func:`~spikeinit.init.model.initialize` then draws the layer at PyTorch's default scale,
    :math:`\mathrm{Var}[w] = 1/(3n)`, and sets the normalization's weight :math:`\gamma` to
    that std (its bias to 0). ``None``: normalizations are left as they are.
    ``rate_target``: the method sets rates, not a :math:`\sigma` (its records carry no sigma).
    ``sigma_fixed_point``: the method draws :math:`\mathrm{Var}[w] = \sigma^2/(n\,E[x^2])`, so
    its :math:`\sigma` is a fixed point of the one-step variance map (stable or not).

    Example:
        >>> method, _ = get_method("paper")
        >>> mean, variance = method.statistics(LayerContext(fan_in=100, fan_out=100))
        >>> mean, round(variance, 4)  # sigma^2 / (n Q(theta/sigma)) = 1 / (100 Q(1))
        (0.0, 0.063)
        >>> weight = torch.empty(100, 100)
        >>> _ = method.initialize_(weight, None, LayerContext(fan_in=100, fan_out=100),
        ...                        generator=torch.Generator().manual_seed(0))
        >>> round(weight.var().item(), 2)
        0.06
    """

    name: str
    summary: str
    statistics_fn: StatisticsFn
    sampler: SamplerFn | None = None
    bias_sampler: SamplerFn | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    value_option: str | None = None
    operating_point: Callable[[float], float] | None = None
    operating_rule: str = ""
    operating_layers: str = "all"
    sigma_option: str | None = None
    norm_sigma: Callable[[LayerContext, Mapping[str, Any]], float] | None = None
    rate_target: bool = False
    sigma_fixed_point: bool = False

    def resolve_options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            allowed = ", ".join(sorted(self.options)) or "none"
            raise InvalidArgumentError(
                f"unknown option(s) {', '.join(unknown)} for init {self.name!r}; allowed: {allowed}"
            )
        return {**self.options, **given}

    def statistics(self, ctx: LayerContext, **options: Any) -> Statistics:
        """``(mean, variance)`` of the weights this method draws for the layer ``ctx``."""
        return self.statistics_fn(ctx, self.resolve_options(options))

    def initialize_(
        self,
        weight: Tensor,
        bias: Tensor | None,
        ctx: LayerContext,
        generator: torch.Generator | None = None,
        **options: Any,
    ) -> Statistics:
        """Fill ``weight`` (and ``bias``) in place; returns the ``(mean, variance)`` used."""
        resolved = self.resolve_options(options)
        with torch.no_grad():
            if self.sampler is not None:
                self.sampler(weight, ctx, resolved, generator)
                stats = self.statistics_fn(ctx, resolved)
            else:
                stats = self.statistics_fn(ctx, resolved)
                weight.normal_(stats[0], math.sqrt(stats[1]), generator=generator)
            if bias is not None:
                if self.bias_sampler is not None:
                    self.bias_sampler(bias, ctx, resolved, generator)
                else:
                    bias.zero_()
        return stats


_REGISTRY: dict[str, InitMethod] = {}


def register(method: InitMethod) -> InitMethod:
    """Add ``method`` to the registry under ``method.name``; a name already taken raises.

    Returns ``method``, so that it can be registered where it is defined.

    Example:
        >>> from unittest import mock
        >>> def half_kaiming(ctx, options):  # (mean, variance) of one weight
        ...     return 0.0, 1.0 / ctx.fan_in
        >>> with mock.patch.dict(_REGISTRY):  # the registration is undone after the example
        ...     _ = register(InitMethod("half-kaiming", "Var[w] = 1/n", half_kaiming))
        ...     get_method("half-kaiming")[0].statistics(LayerContext(fan_in=4, fan_out=2))
        (0.0, 0.25)
        >>> register(get_method("paper")[0])
        Traceback (most recent call last):
            ...
        spikeinit.errors.InvalidArgumentError: init method 'paper' is already registered
    """
    if method.name in _REGISTRY:
        raise InvalidArgumentError(f"init method {method.name!r} is already registered")
    _REGISTRY[method.name] = method
    return method


def available_methods() -> list[str]:
    """Names of all registered methods, sorted.

    Example:
        >>> {"paper", "stable", "kaiming", "trainable"} <= set(available_methods())
        True
    """
    return sorted(_REGISTRY)


def get_method(spec: str) -> tuple[InitMethod, dict[str, Any]]:
    """Look up ``'name'`` or ``'name=value'`` (e.g. ``'temporal-rate=0.1'``).

    Returns the method and the options parsed from the name: ``value`` goes to the method's
    ``value_option``.

    Example:
        >>> method, options = get_method("temporal-rate=0.1")
        >>> method.name, options
        ('temporal-rate', {'rate': 0.1})
        >>> get_method("kaiming")[1]
        {}
    """
    name, _, value = str(spec).partition("=")
    method = _REGISTRY.get(name)
    if method is None:
        raise InvalidArgumentError(
            f"init must be one of {', '.join(available_methods())}; got {spec!r}")
    if not value:
        return method, {}
    if method.value_option is None:
        raise InvalidArgumentError(f"init {name!r} takes no value, got {spec!r}")
    try:
        parsed = float(value)
    except ValueError:
        raise InvalidArgumentError(
            f"init {name!r} needs a number after '=', got {value!r}") from None
    return method, {method.value_option: parsed}
