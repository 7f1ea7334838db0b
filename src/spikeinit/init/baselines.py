r"""Initializations designed for ANNs, the baselines of the paper.

===========  ======================================  ==========================
name         weight distribution                     variance
===========  ======================================  ==========================
pytorch      ``kaiming_uniform_(a=sqrt(5))``         :math:`1/(3n)`
kaiming      :math:`N(0, 2/n)`                       :math:`2/n`
xavier       :math:`N(0, 2/(n_{in}+n_{out}))`        :math:`2/(n_{in}+n_{out})`
lecun        :math:`N(0, 1/n)`                       :math:`1/n`
orthogonal   ``orthogonal_(gain=1)``                 :math:`1/\max(n_{in}, n_{out})`
===========  ======================================  ==========================
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from spikeinit.init.context import LayerContext
from spikeinit.init.registry import InitMethod, register


def _pytorch_weight(
    weight: Tensor, ctx: LayerContext, options: Mapping[str, Any], generator: torch.Generator | None
) -> None:
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)


def _pytorch_bias(
    bias: Tensor, ctx: LayerContext, options: Mapping[str, Any], generator: torch.Generator | None
) -> None:
    bound = 1.0 / math.sqrt(ctx.fan_in)
    bias.uniform_(-bound, bound, generator=generator)


#: The methods registered here: they draw from the fan alone, whatever the neurons' threshold.
BASELINE_METHODS = ("pytorch", "kaiming", "xavier", "lecun", "orthogonal")

def _orthogonal_weight(
    weight: Tensor, ctx: LayerContext, options: Mapping[str, Any], generator: torch.Generator | None
) -> None:
    nn.init.orthogonal_(weight, gain=options["gain"], generator=generator)


register(
    InitMethod(
        name="pytorch",
        summary="PyTorch default (nn.Linear.reset_parameters): U(+-1/sqrt(n)), Var = 1/(3n)",
        statistics_fn=lambda ctx, o: (0.0, 1.0 / (3.0 * ctx.fan_in)),
        sampler=_pytorch_weight,
        bias_sampler=_pytorch_bias,
    )
)
register(
    InitMethod(
        name="kaiming",
        summary="He et al. 2015 normal, for ReLU: Var = 2/n_in",
        statistics_fn=lambda ctx, o: (0.0, 2.0 / ctx.fan_in),
    )
)
register(
    InitMethod(
        name="xavier",
        summary="Glorot & Bengio 2010 normal: Var = 2/(n_in + n_out)",
        statistics_fn=lambda ctx, o: (0.0, 2.0 / (ctx.fan_in + ctx.fan_out)),
    )
)
register(
    InitMethod(
        name="lecun",
        summary="LeCun normal: Var = 1/n_in",
        statistics_fn=lambda ctx, o: (0.0, 1.0 / ctx.fan_in),
    )
)
register(
    InitMethod(
        name="orthogonal",
        summary="Saxe et al. 2014 orthogonal rows/columns: Var = gain^2/max(n_in, n_out)",
        statistics_fn=lambda ctx, o: (0.0, o["gain"] ** 2 / max(ctx.fan_in, ctx.fan_out)),
        sampler=_orthogonal_weight,
        options={"gain": 1.0},
    )
)
