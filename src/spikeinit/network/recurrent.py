r"""Recurrent populations: neurons that receive their own spikes of the previous step.

A recurrent population of :math:`N` neurons sums a feed-forward current and its own spikes,

.. math::

    I[t] = W_{in}\,x[t] + b + W_{rec}\,s[t-1],

and each framework holds :math:`W_{rec}` in its own place (:func:`find_loops` reads them):

- snnTorch ``RLeaky`` (``all_to_all=True``): the ``recurrent`` Linear inside the neuron; the
  feed-forward :math:`W_{in}` is the synaptic layer that drives it;
- Norse ``LIFRecurrentCell``: ``recurrent_weights`` and ``input_weights`` inside the cell
  (no bias; the diagonal stays zero without ``autapses``);
- SpikingJelly ``layer.LinearRecurrentContainer``: one Linear ``rc`` on
  :math:`(x[t], y[t-1])`, whose weight is :math:`[W_{in}, W_{rec}]` and whose bias is
  :math:`b`, around its ``sub_module`` when that is a neuron (``in_features = out_features``);
- spikeinit's own recurrent blocks: a module with an ``input`` Linear, a square ``recurrent``
  Linear and a ``lif`` neuron.

Nothing here draws or runs: a :class:`RecurrentLoop` names the tensors; the init of
:mod:`spikeinit.init.recurrent` sets them.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from spikeinit.adapters.registry import is_spiking_neuron
from spikeinit.network.nodes import NetworkMap

__all__ = ["RecurrentLoop", "find_loops", "is_recurrent_block", "recurrent_block_parts",
           "spike_current"]


@dataclass(frozen=True, eq=False)
class RecurrentLoop:
    r"""One recurrent population: its neuron, its recurrent weights and its feed-forward drive.

    ``weight`` is :math:`W_{rec}` (``(N, N)``, a view of the parameter that holds it),
    ``bias`` its own bias (snnTorch's ``recurrent`` Linear; ``None`` elsewhere),
    ``drive`` the tensors whose common scale sets the feed-forward current (:math:`W_{in}`
    and :math:`b`), named ``drive_name``; ``zero_diagonal`` keeps self-connections at zero
    (Norse without ``autapses``); ``covers`` are the names of
    :attr:`~spikeinit.network.NetworkMap.internal` (or of a synaptic layer left out of the
    feed-forward draw, SpikingJelly's ``rc``) that the loop accounts for.
    """

    name: str
    neuron_name: str
    neuron: nn.Module
    weight: Tensor
    bias: Tensor | None
    drive: tuple[Tensor, ...]
    drive_name: str | None
    zero_diagonal: bool = False
    covers: tuple[str, ...] = ()

    @property
    def width(self) -> int:
        """The number of neurons :math:`N` of the population."""
        return int(self.weight.shape[0])


def _joined(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _linear_tensors(module: nn.Module | None) -> tuple[Tensor, ...]:
    if not isinstance(module, nn.Linear):
        return ()
    return (module.weight,) + ((module.bias,) if module.bias is not None else ())


def _square(weight: object) -> bool:
    return isinstance(weight, Tensor) and weight.dim() == 2 and weight.shape[0] == weight.shape[1]


def _snntorch_loop(name: str, module: nn.Module, network: NetworkMap | None
                   ) -> RecurrentLoop | None:
    recurrent = getattr(module, "recurrent", None)
    if not isinstance(recurrent, nn.Linear) or not _square(recurrent.weight):
        return None
    driver = network.driver(name) if network is not None else None
    return RecurrentLoop(
        _joined(name, "recurrent"), name, module, recurrent.weight, recurrent.bias,
        _linear_tensors(driver.module if driver is not None else None),
        driver.name if driver is not None else None, covers=(_joined(name, "recurrent"),))


def _norse_loop(name: str, module: nn.Module) -> RecurrentLoop | None:
    recurrent = getattr(module, "recurrent_weights", None)
    drive = getattr(module, "input_weights", None)
    if not _square(recurrent) or not isinstance(drive, Tensor):
        return None
    names = (_joined(name, "input_weights"), _joined(name, "recurrent_weights"))
    return RecurrentLoop(names[1], name, module, recurrent, None, (drive,), names[0],
                         zero_diagonal=not getattr(module, "autapses", True), covers=names)


def _container_loop(name: str, module: nn.Module) -> RecurrentLoop | None:
    rc, neuron = getattr(module, "rc", None), getattr(module, "sub_module", None)
    size = getattr(module, "sub_module_out_features", None)
    if (not isinstance(rc, nn.Linear) or neuron is None or not is_spiking_neuron(neuron)
            or rc.out_features != size):
        return None  # a sub-module that is not one population: its loop is not a W_rec
    inputs = rc.in_features - size
    drive = (rc.weight[:, :inputs],) + ((rc.bias,) if rc.bias is not None else ())
    return RecurrentLoop(_joined(name, "rc") + f"[:, {inputs}:]", _joined(name, "sub_module"),
                         neuron, rc.weight[:, inputs:], None, drive,
                         _joined(name, "rc") + f"[:, :{inputs}]", covers=(_joined(name, "rc"),))


def spike_current(amplitude: float, synaptic_decay: float) -> float:
    r"""The current a weight of 1 delivers per spike at zero frequency: :math:`a/(1-\alpha)`
    for spikes of amplitude :math:`a` through a synaptic filter of decay :math:`\alpha`. A
    loop's gain is :math:`g = \mathrm{std}(W_{rec})\sqrt N` times it (and its mean gain
    :math:`m = N\,\overline{W_{rec}}` times it).

    Example:
        >>> spike_current(1.0, 0.0), spike_current(2.0, 0.5)
        (1.0, 4.0)
    """
    return amplitude / max(1.0 - synaptic_decay, 1e-12)


def is_recurrent_block(module: nn.Module) -> bool:
    """Whether ``module`` is a recurrent block of the spikeinit kind: an ``input`` Linear, a
    square ``recurrent`` Linear and a ``lif`` neuron. The tensor operations its ``forward``
    does outside those (the loop over the steps) are part of the population, not nodes.

    Example:
        >>> from spikeinit.models import RecurrentBlock
        >>> is_recurrent_block(RecurrentBlock(3, 4)), is_recurrent_block(nn.Linear(4, 4))
        (True, False)
    """
    recurrent, neuron = getattr(module, "recurrent", None), getattr(module, "lif", None)
    return (isinstance(recurrent, nn.Linear) and _square(recurrent.weight)
            and isinstance(getattr(module, "input", None), nn.Linear)
            and neuron is not None and is_spiking_neuron(neuron))


def recurrent_block_parts(name: str) -> tuple[str, str, str]:
    """The names of the neuron, the feed-forward layer and the recurrent layer of the
    recurrent block ``name`` (:func:`is_recurrent_block`).

    Example:
        >>> recurrent_block_parts("blocks.0"), recurrent_block_parts("")
        (('blocks.0.lif', 'blocks.0.input', 'blocks.0.recurrent'), ('lif', 'input', 'recurrent'))
    """
    return _joined(name, "lif"), _joined(name, "input"), _joined(name, "recurrent")


def _block_loop(name: str, module: nn.Module) -> RecurrentLoop | None:
    if not is_recurrent_block(module):
        return None
    neuron, feed, recurrent = recurrent_block_parts(name)
    return RecurrentLoop(recurrent, neuron, module.lif, module.recurrent.weight,
                         module.recurrent.bias, _linear_tensors(module.input), feed,
                         covers=(recurrent,))


def find_loops(model: nn.Module, network: NetworkMap | None = None) -> list[RecurrentLoop]:
    """Every recurrent population of ``model`` (module docstring), in module order.

    ``network`` (the map of :func:`~spikeinit.network.discover`) names the synaptic layer that
    drives a neuron holding its recurrent weights (snnTorch ``RLeaky``); without it that loop
    has no drive.

    Example:
        >>> from spikeinit.neurons import LIF
        >>> class Block(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.input, self.recurrent = nn.Linear(3, 4), nn.Linear(4, 4, bias=False)
        ...         self.lif = LIF()
        >>> [(loop.name, loop.neuron_name, loop.width) for loop in find_loops(Block())]
        [('recurrent', 'lif', 4)]
    """
    loops: list[RecurrentLoop] = []
    for name, module in model.named_modules():
        kind = type(module).__name__
        loop = None
        if kind == "LinearRecurrentContainer":
            loop = _container_loop(name, module)
        elif is_spiking_neuron(module):
            loop = (_snntorch_loop(name, module, network) if hasattr(module, "recurrent")
                    else _norse_loop(name, module))
        elif hasattr(module, "recurrent") and hasattr(module, "lif"):
            loop = _block_loop(name, module)
        if loop is not None:
            loops.append(loop)
    return loops
