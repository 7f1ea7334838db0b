"""spikeinit: weight initialization that keeps spiking activity alive through deep SNNs.

Quick use::

    import spikeinit
    spikeinit.spike_normal_(layer.weight, threshold=1.0)     # like nn.init.kaiming_normal_
    spikeinit.initialize(model, method="paper")                # a whole spikeinit model
"""

from spikeinit import theory
from spikeinit.init import (
    available_methods,
    get_method,
    initialize,
    spike_normal_,
    spike_uniform_,
)
from spikeinit.neurons import LIF, LIFParameters, reset_states
from spikeinit.theory import spike_std, tail_probability

__version__ = "0.1.0"

__all__ = [
    "LIF",
    "LIFParameters",
    "__version__",
    "available_methods",
    "get_method",
    "initialize",
    "reset_states",
    "spike_normal_",
    "spike_std",
    "spike_uniform_",
    "tail_probability",
    "theory",
]
