"""What a module is to the network graph: a synaptic layer, or which :class:`Operation`.

The synaptic layers are torch's :data:`SYNAPTIC_TYPES` (spiking neurons are recognized by
:mod:`spikeinit.adapters`). Every other leaf module on the path between two layers is an
:class:`~spikeinit.network.nodes.Operation` whose ``kind`` :func:`operation_of` reads from its
class: pooling (with the number of elements one output reads), normalization, dropout
(torch's, or a framework's in :data:`FRAMEWORK_DROPOUTS`), reshape, or ``unknown``.
"""

from __future__ import annotations

import math

from torch import nn

from spikeinit.network.nodes import Operation

SYNAPTIC_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)

AVG_POOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d,
             nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
MAX_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d,
             nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm,
         nn.modules.instancenorm._InstanceNorm)
DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
RESHAPES = (nn.Flatten, nn.Unflatten, nn.Identity)

#: Dropouts of the frameworks that are not subclasses of torch's (SpikingJelly's share one mask
#: over the time steps), by the module and name of their class.
FRAMEWORK_DROPOUTS = ("spikingjelly.activation_based.layer.dropout.Dropout",
                      "spikingjelly.activation_based.layer.dropout.Dropout2d")


def is_dropout(module: nn.Module) -> bool:
    """Whether ``module`` is a dropout: torch's, or a framework's in :data:`FRAMEWORK_DROPOUTS`.

    Example:
        >>> is_dropout(nn.Dropout(0.2)), is_dropout(nn.ReLU())
        (True, False)
    """
    return isinstance(module, DROPOUTS) or any(
        f"{cls.__module__}.{cls.__qualname__}" in FRAMEWORK_DROPOUTS
        for cls in type(module).__mro__)


def pooling_window(module: nn.Module, shapes: tuple[int, int] | None = None) -> int:
    """The number of elements one output of the pooling ``module`` reads: the product of its
    ``kernel_size``, else (an adaptive pooling) ``inputs / outputs`` from ``shapes`` (the
    element counts of its input and output at the traced call), else 0 (unknown).

    Example:
        >>> pooling_window(nn.AvgPool2d(2)), pooling_window(nn.AdaptiveAvgPool2d(1), (64, 4))
        (4, 16)
    """
    kernel = getattr(module, "kernel_size", None)
    if kernel is not None:
        if isinstance(kernel, (tuple, list)):
            sizes = tuple(kernel)
        elif isinstance(module, (nn.AvgPool1d, nn.MaxPool1d)):
            sizes = (kernel,)
        elif isinstance(module, (nn.AvgPool3d, nn.MaxPool3d)):
            sizes = (kernel,) * 3
        else:
            sizes = (kernel,) * 2
        return math.prod(int(k) for k in sizes)
    if shapes is not None and shapes[1] > 0:
        return max(int(round(shapes[0] / shapes[1])), 1)
    return 0


def operation_of(name: str, module: nn.Module, shapes: tuple[int, int] | None = None
                 ) -> Operation:
    """The :class:`~spikeinit.network.nodes.Operation` that the leaf module ``name`` performs
    (``shapes``: the element counts of its input and output, for an adaptive pooling).

    Example:
        >>> operation_of("pool", nn.MaxPool2d(2)).label()
        'pool (max-pool, 4 elements)'
        >>> operation_of("act", nn.ReLU()).kind
        'unknown'
    """
    if isinstance(module, AVG_POOLS + MAX_POOLS):
        kind = "avg-pool" if isinstance(module, AVG_POOLS) else "max-pool"
        return Operation(name, kind, module, pooling_window(module, shapes))
    if isinstance(module, NORMS):
        return Operation(name, "normalization", module)
    if is_dropout(module):
        return Operation(name, "dropout", module)
    if isinstance(module, RESHAPES):
        return Operation(name, "reshape", module)
    return Operation(name, "unknown", module)
