r"""The operating point: the membrane std :math:`\sigma` of every population, as
:func:`~spikeinit.init.model.initialize` assumes it, and why."""

from __future__ import annotations

from typing import Any

from spikeinit.init.context import LayerContext
from spikeinit.init.registry import InitMethod
from spikeinit.network import NetworkMap, SynapticLayer
from spikeinit.theory.gaussian import inverse_tail_probability, tail_probability
from spikeinit.theory.static import stability_slope

__all__ = ["FAR_THRESHOLD", "OperatingPoint"]

#: :math:`\tilde\theta_{src}/\sigma` beyond which ``initialize`` warns that the input neurons
#: hardly spike: their rate is below :math:`Q(3) = 0.13\%`.
FAR_THRESHOLD = 3.0


class OperatingPoint:
    r"""The membrane std :math:`\sigma` of every population, as ``initialize`` assumes it.

    A given ``sigma`` holds everywhere. Otherwise, when the method has an operating point,
    populations driven by a layer that ``initialize`` draws get
    ``method.operating_point(theta/g)`` (all of them, or the network's first one only, per
    ``method.operating_layers``); every other population (driven by data directly, or when the
    method has no operating point) has :math:`\sigma = 1`. The method's own option for its
    :math:`\sigma` (``method.sigma_option``, e.g. ``temporal``'s ``input_std``), when passed,
    counts as given. A method with a rate target :math:`r` (``trainable``) has no
    :math:`\sigma`; its source neurons fire at the rate, read as the one-step
    :math:`\sigma = \tilde\theta / Q^{-1}(r)` that gives it, so that pooling and dropout on the
    way act on that rate.

    Example:
        >>> from spikeinit.init.registry import get_method
        >>> from spikeinit.models import SpikingMLP
        >>> from spikeinit.network import discover
        >>> network = discover(SpikingMLP([4, 8, 2], threshold=2.0))
        >>> point = OperatingPoint(get_method("stable")[0], network, None, None)
        >>> round(point.layer_sigmas(network.layers[1])[0], 3)  # 2 / 0.5618
        3.56
    """

    def __init__(self, method: InitMethod, network: NetworkMap, sigma: float | None,
                 threshold: float | None, options: dict[str, Any] | None = None) -> None:
        self.method, self.given, self.threshold = method, sigma, threshold
        self.rate = (float(method.resolve_options(options or {})[method.value_option])
                     if method.rate_target else None)
        option = (options or {}).get(method.sigma_option) if method.sigma_option else None
        self.option = None if option is None else float(option)
        self.auto = sigma is None and self.option is None and method.operating_point is not None
        self.drawn = {layer.target_name for layer in network.layers
                      if layer.problem is None and layer.target_name is not None}
        first = next((site for site in network.neurons if site.description is not None), None)
        self.first_name = first.name if first is not None else None
        self.first_sigma = 1.0 if sigma is None else sigma
        if first is not None and self.first_name in self.drawn:
            self.first_sigma = self.sigma(self.first_name, first.description.effective_threshold)
        if self.option is not None:
            self.first_sigma = self.option
        self._rescued: dict[tuple[float, float], list[str]] = {}

    def _theta(self, own: float) -> float:
        return own if self.threshold is None else self.threshold

    def chooses(self, name: str | None) -> bool:
        """Whether the operating point sets the sigma of population ``name``."""
        if not self.auto or name not in self.drawn:
            return False
        return self.method.operating_layers == "all" or name == self.first_name

    def sigma(self, name: str | None, theta: float) -> float:
        """The sigma of population ``name`` with effective threshold ``theta``."""
        if self.given is not None:
            return self.given
        if self.chooses(name) and self.method.operating_point is not None:
            return float(self.method.operating_point(self._theta(theta)))
        return 1.0

    def layer_sigmas(self, layer: SynapticLayer) -> tuple[float, float | None]:
        """``(sigma of the neurons it drives, sigma of its source neurons or None)``."""
        target = layer.target_description or layer.source_description
        own = target.effective_threshold if target is not None else 1.0
        name = layer.target_name
        if layer.target_name is None and self.auto and self.method.operating_layers == "all":
            name = layer.name  # no neuron: the operating point of the threshold it assumes
            self.drawn.add(name)
        target_sigma = self.sigma(name, own)
        if layer.source is None:
            return target_sigma, None
        description = layer.source_description
        theta = description.effective_threshold if description is not None else 1.0
        if self.rate is not None and description is not None:
            return target_sigma, theta / float(inverse_tail_probability(self.rate))
        driven = layer.source_name in self.drawn and not layer.source_driven_by_data
        return target_sigma, self.sigma(layer.source_name if driven else None, theta)

    def faint_input(self, ctx: LayerContext) -> bool:
        r"""Whether the layer's given :math:`\sigma` puts its input neurons more than
        :data:`FAR_THRESHOLD` standard deviations below their threshold (hardly spiking)."""
        return (not self.auto and self.method.operating_layers == "all"
                and not self.method.rate_target and ctx.input_threshold is not None
                and ctx.input_second_moment is None
                and ctx.input_threshold / ctx.source_sigma > FAR_THRESHOLD)

    def record(self, layer: SynapticLayer, ctx: LayerContext) -> tuple[float | None, bool, str]:
        """``(sigma, chosen automatically, why)`` for the layer's record."""
        if self.rate is not None:
            return None, False, "a rate target, no sigma"
        first = self.method.operating_layers == "first"
        used = self.first_sigma if first else ctx.sigma
        name = self.first_name if first else (layer.target_name or layer.name)
        theta = ctx.threshold if not first or layer.target_name == self.first_name else None
        if first and self.option is not None:
            return used, False, f"given ({self.method.sigma_option})"
        if not self.chooses(name):
            why = "given" if self.given is not None else (
                "sigma = 1, the default" if self.method.operating_point is None
                else "sigma = 1 for neurons driven by data")
            return used, False, why
        if theta is None:
            return used, True, (f"sigma of the first layer's current (chosen for "
                                f"{self.first_name}), which sets the target rate")
        slope_one, slope = stability_slope(theta, 1.0), stability_slope(theta, used)
        if slope_one >= 1.0 and used != 1.0:
            self._rescued.setdefault((theta, used), []).append(layer.name)
        return used, True, (
            f"{self.method.operating_rule}: at theta/g = {theta:.4g}, sigma = 1 has slope "
            f"{slope_one:.3g}{' (unstable)' if slope_one >= 1 else ''}, sigma = {used:.4g} has "
            f"slope {slope:.3g} and rate Q({theta / used:.3g}) = "
            f"{float(tail_probability(theta / used)):.3g}")

    def rescued_summary(self) -> str:
        """The layers whose sigma = 1 would have been unstable, grouped, or ''."""
        parts = []
        for (theta, sigma), names in self._rescued.items():
            shown = ", ".join(names[:3]) + (f", ... ({len(names)} layers)" if len(names) > 3
                                            else "")
            parts.append(f"layers {shown} (theta/g = {theta:g}, slope "
                         f"{stability_slope(theta, 1.0):.2g} at sigma = 1): sigma = {sigma:.4g}")
        return "; ".join(parts)
