"""The warnings ``initialize`` gives about a network and its draw, each once.

Every function here is called by :func:`~spikeinit.init.model.initialize` itself, so that its
``stacklevel`` of 3 points at the caller's line.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection

from spikeinit.init.operating_point import FAR_THRESHOLD, OperatingPoint
from spikeinit.init.records import AttentionRecord
from spikeinit.init.registry import InitMethod
from spikeinit.network import NetworkMap

__all__ = ["warn_about_attention", "warn_about_the_draw", "warn_about_the_network",
           "warn_each_once"]


def warn_each_once(caught: list[warnings.WarningMessage]) -> None:
    """Give again the warnings caught while drawing, each distinct (category, text) once."""
    seen: set[tuple[type, str]] = set()
    for item in caught:
        key = (item.category, str(item.message))
        if key not in seen:
            seen.add(key)
            warnings.warn(str(item.message), item.category, stacklevel=3)


def warn_about_the_network(network: NetworkMap, covered: Collection[str] = ()) -> None:
    """Name the layers left unchanged (with why), but those ``covered`` by the init of a
    recurrent population, and those with no spiking neuron around."""
    unchanged = [f"{layer.name} ({layer.problem})" for layer in network.layers
                 if layer.problem and layer.name not in covered]
    unchanged += [f"{name} (a weight layer inside a neuron)" for name in network.internal]
    if unchanged:
        warnings.warn("left unchanged: " + "; ".join(unchanged), stacklevel=3)
    orphans = [layer.name for layer in network.layers if layer.problem is None
               and layer.source is None and layer.target is None]
    if orphans:
        warnings.warn(
            f"no LIF neurons found around {', '.join(orphans)}; initialized with default "
            "threshold/beta (pass threshold= and beta=, or use spikeinit's LIF or a supported "
            "snnTorch/SpikingJelly/Norse neuron)", stacklevel=3)


def warn_about_the_draw(unmodelled: list[str], faint: list[str], sigma: float | None,
                        point: OperatingPoint, method: InitMethod) -> None:
    """Name what was drawn without modelling, the input neurons that hardly spike at the given
    ``sigma``, and the layers whose sigma = 1 the operating point replaced."""
    if unmodelled:
        warnings.warn("initialized without modelling: " + "; ".join(unmodelled)
                      + " (spikeinit.calibrate measures their effect)", stacklevel=3)
    if faint:
        warnings.warn(
            f"the input neurons of {', '.join(faint)} sit more than {FAR_THRESHOLD:g} sigma "
            f"below threshold (sigma={1.0 if sigma is None else sigma:g}): they would hardly "
            "spike, and the weights are scaled up to match; leave sigma out with init "
            "'stable', or use the default 'trainable', for a stable operating point",
            stacklevel=3)
    rescued = point.rescued_summary()
    if rescued:
        warnings.warn(
            f"initialize chose a stable operating point where sigma = 1 is unstable: {rescued} "
            f"({method.operating_rule}); see InitRecord.sigma and spikeinit.report. Pass "
            "sigma= to set it (method='paper', sigma=1.0 is the published init)", stacklevel=3)


#: How far from the target rate an attention population may sit on the sample before a warning
#: says so (the band of the transformer acceptance, docs/architectures.md).
ATTENTION_TOLERANCE = 0.25


def warn_about_attention(records: list[AttentionRecord], target: float | None = None) -> None:
    """Name the attention populations left as they were, with why, and those set but farther
    than :data:`ATTENTION_TOLERANCE` from ``target`` on the sample."""
    left = [f"{record.neuron} ({'; '.join(record.notes)})" for record in records
            if record.after is None]
    if left:
        warnings.warn("attention populations not set to the target rate: " + "; ".join(left),
                      stacklevel=3)
    if target is None:
        return
    far = [f"{record.neuron} at {record.rate:.3g}" for record in records
           if record.after is not None and record.rate is not None
           and abs(record.rate / target - 1.0) > ATTENTION_TOLERANCE]
    if far:
        warnings.warn(
            f"attention populations set only near the target rate {target:g}: "
            + ", ".join(far) + " on the sample. Their current counts coincident spikes, so the "
            "rate moves in steps that few tokens (or a small sample) make coarse; "
            "InitResult.attention gives each one's spread", stacklevel=3)
