"""SpikingJelly's networks as users build them: its tutorial CNN, its model-zoo ResNets
importable without torchvision, and its spiking transformers at a reduced size.

``spikingjelly.activation_based.model.sew_resnet`` and ``ms_resnet`` import
``torchvision._internally_replaced_utils.load_state_dict_from_url`` at module level, only to
download pretrained weights. torchvision drags a CUDA torch into a CPU environment, so where it
is absent :func:`stub_torchvision` puts a stand-in for that one function in ``sys.modules``
(it raises if pretrained weights are asked for). Nothing else of torchvision is used.

Example:
    >>> stub_torchvision()  # doctest: +SKIP
    >>> net = zoo_resnet("sew_resnet18")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import sys
import types
from typing import Any

from torch import nn

from spikeinit.errors import InvalidArgumentError

ZOO = {"sew_resnet18": ("sew_resnet", {"cnf": "ADD"}), "ms_resnet18": ("ms_resnet", {})}
"""The zoo networks :func:`zoo_resnet` builds: module and keyword arguments."""


def stub_torchvision() -> bool:
    """Put a stand-in for torchvision's ``load_state_dict_from_url`` in ``sys.modules`` when
    torchvision is not installed; whether it did."""
    if "torchvision" in sys.modules or importlib.util.find_spec("torchvision") is not None:
        return False

    def load_state_dict_from_url(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("pretrained weights need torchvision (pip install torchvision)")

    package = types.ModuleType("torchvision")
    inner = types.ModuleType("torchvision._internally_replaced_utils")
    inner.load_state_dict_from_url = load_state_dict_from_url  # type: ignore[attr-defined]
    package._internally_replaced_utils = inner  # type: ignore[attr-defined]
    sys.modules["torchvision"] = package
    sys.modules["torchvision._internally_replaced_utils"] = inner
    return True


TRANSFORMERS = ("spikformer", "spike_driven_transformer")
"""The zoo transformers :func:`zoo_transformer` builds."""


def zoo_transformer(name: str, embed_dims: int = 64, num_heads: int = 4, depths: int = 2,
                    image: int = 32, steps: int = 4, num_classes: int = 10) -> nn.Module:
    """SpikingJelly's ``Spikformer`` (spiking self-attention, patch size 4, as
    ``spikformer_cifar10``) or ``SpikeDrivenTransformer`` (spike-driven attention, pooling in
    the last two stem stages), with its default neurons, multi-step, for ``image`` x ``image``
    RGB inputs laid out ``(T, B, 3, H, W)``: ``(image / 4)^2`` tokens of ``embed_dims``
    channels in ``num_heads`` heads, ``depths`` blocks."""
    if name not in TRANSFORMERS:
        raise InvalidArgumentError(f"name must be one of {', '.join(TRANSFORMERS)}, got {name!r}")
    stub_torchvision()
    if name == "spikformer":
        from spikingjelly.activation_based.model.spikformer import Spikformer

        return Spikformer(T=steps, img_size_h=image, img_size_w=image, patch_size=4,
                          num_classes=num_classes, embed_dims=embed_dims, num_heads=num_heads,
                          depths=depths)
    from spikingjelly.activation_based.model.spike_driven_transformer import (
        SpikeDrivenTransformer,
    )

    return SpikeDrivenTransformer(T=steps, num_classes=num_classes, embed_dims=embed_dims,
                                  num_heads=num_heads, depths=depths, pooling_stat="0011")


def zoo_resnet(name: str, num_classes: int = 10) -> nn.Module:
    """SpikingJelly's ``name`` (one of :data:`ZOO`) with its ``LIFNode`` neurons, multi-step:
    the model a user of the zoo trains, input ``(T, B, 3, H, W)``."""
    if name not in ZOO:
        raise InvalidArgumentError(f"name must be one of {', '.join(ZOO)}, got {name!r}")
    stub_torchvision()
    from spikingjelly.activation_based import functional, neuron
    from spikingjelly.activation_based.model import ms_resnet, sew_resnet

    module_name, options = ZOO[name]
    module = {"sew_resnet": sew_resnet, "ms_resnet": ms_resnet}[module_name]
    net = getattr(module, name)(spiking_neuron=neuron.LIFNode, num_classes=num_classes,
                                **options)
    functional.set_step_mode(net, "m")
    return net


def spikingjelly_tutorial_cnn(norm: bool, channels: int = 16, hidden: int = 256) -> nn.Module:
    """SpikingJelly's Fashion-MNIST tutorial network, multi-step, input ``(T, B, 1, 28, 28)``:
    (Conv3x3 ``channels`` [+ BatchNorm] + ``LIFNode(tau=2)`` + MaxPool2) x 2, then
    Linear(``channels`` * 7 * 7, ``hidden``) + LIF and Linear(``hidden``, 10) + LIF."""
    from spikingjelly.activation_based import functional, layer, neuron

    modules: list[nn.Module] = []
    for c_in in (1, channels):
        modules.append(layer.Conv2d(c_in, channels, 3, padding=1, bias=False))
        if norm:
            modules.append(layer.BatchNorm2d(channels))
        modules += [neuron.LIFNode(tau=2.0), layer.MaxPool2d(2)]
    modules += [layer.Flatten(), layer.Linear(channels * 49, hidden, bias=False),
                neuron.LIFNode(tau=2.0), layer.Linear(hidden, 10, bias=False),
                neuron.LIFNode(tau=2.0)]
    net = nn.Sequential(*modules)
    functional.set_step_mode(net, "m")
    return net
