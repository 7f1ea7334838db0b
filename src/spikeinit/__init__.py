"""spikeinit: weight initialization that keeps spiking activity alive through deep SNNs.

Quick use::

    import spikeinit
    spikeinit.spike_normal_(layer.weight, threshold=1.0)     # like nn.init.kaiming_normal_
    spikeinit.initialize(model, method="paper", sample=x)      # any model: ours, snnTorch,
                                                               # SpikingJelly or Norse
    spikeinit.calibrate(model, x)                              # data-driven, layer by layer
    spikeinit.report(model, x).print()                         # health report
"""

import warnings
from typing import Any

from spikeinit import theory
from spikeinit.adapters.registry import reset_neurons as reset
from spikeinit.calibration import calibrate
from spikeinit.errors import InternalError, InvalidArgumentError, SpikeinitError, UserError
from spikeinit.health import report
from spikeinit.init import (
    available_methods,
    get_method,
    initialize,
    spike_normal_,
    spike_uniform_,
)
from spikeinit.neurons import LIF, LIFParameters
from spikeinit.theory import spike_std, tail_probability

__version__ = "0.1.0"

__all__ = [
    "LIF",
    "InternalError",
    "InvalidArgumentError",
    "LIFParameters",
    "SpikeinitError",
    "UserError",
    "__version__",
    "available_methods",
    "calibrate",
    "get_method",
    "initialize",
    "report",
    "reset",
    "spike_normal_",
    "spike_std",
    "spike_uniform_",
    "tail_probability",
    "theory",
]


def __getattr__(name: str) -> Any:
    """The deprecated top-level names: ``reset_states`` is :func:`reset`."""
    if name == "reset_states":
        warnings.warn("spikeinit.reset_states is deprecated; use spikeinit.reset, which "
                      "returns the neurons of every framework to rest", DeprecationWarning,
                      stacklevel=2)
        return reset
    raise AttributeError(f"module 'spikeinit' has no attribute {name!r}")
