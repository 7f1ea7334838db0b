"""Optimizers and learning-rate schedules of ``spikeinit train``."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from spikeinit.errors import InvalidArgumentError


def make_optimizer(
    parameters: Iterable[Tensor] | Iterable[dict[str, Any]],
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    kind: str = "adam",
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """Adam or AdamW, with the fused kernel (one pass over p, g, m, v) where PyTorch has it.

    ``adam`` adds ``weight_decay * w`` to the gradient (L2); ``adamw`` decays the weights
    apart from the adaptive step: ``w <- w - lr * (weight_decay * w + m_hat / (sqrt(v_hat) +
    eps))``. The fused CPU/CUDA kernels make one pass over the tensors instead of one loop per
    tensor (docs/engine.md, "Training loop", gives the speed-up); where they are unavailable
    (old PyTorch, unsupported device or dtype) the multi-tensor ``foreach`` implementation runs
    the same update.
    """
    optimizers = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    if kind not in optimizers:
        raise InvalidArgumentError(
            f"optimizer must be one of {', '.join(optimizers)}, got {kind!r}")
    parameters = list(parameters)
    options = {"lr": lr, "betas": betas, "weight_decay": weight_decay}
    try:
        return optimizers[kind](parameters, fused=True, **options)
    except (RuntimeError, TypeError, ValueError):
        return optimizers[kind](parameters, foreach=True, **options)


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_steps: int = 0,
    kind: str = "cosine",
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step learning-rate schedule: linear warm-up, then cosine to zero (or constant).

    With ``W = warmup_steps`` and ``S = total_steps``, the factor on the base rate at step
    ``k`` is ``(k + 1) / W`` for ``k < W``, then ``(1 + cos(pi * (k - W) / (S - W))) / 2``
    (``cosine``) or 1 (``constant``). Without warm-up the cosine equals PyTorch's
    ``CosineAnnealingLR(T_max=S)`` and reaches zero after the last step.
    """
    if kind not in ("cosine", "constant"):
        raise InvalidArgumentError(f"schedule must be cosine or constant, got {kind!r}")
    if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
        raise InvalidArgumentError(
            f"need 0 <= warmup_steps <= total_steps and total_steps >= 1, got "
                         f"warmup_steps={warmup_steps}, total_steps={total_steps}")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if kind == "constant":
            return 1.0
        progress = min(step - warmup_steps, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * progress / max(total_steps - warmup_steps, 1)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def clipped_step(model: nn.Module, max_norm: float, optimizer: torch.optim.Optimizer) -> bool:
    r"""One step of ``optimizer`` with every gradient of ``model`` scaled by
    :math:`\min(1, c/\lVert g\rVert)`, :math:`\lVert g\rVert` the L2 norm of all of them
    together and :math:`c` = ``max_norm``. A step whose :math:`\lVert g\rVert` is not finite is
    skipped (its gradients are dropped): returns whether the step was taken.

    Example:
        >>> layer = nn.Linear(2, 1, bias=False)
        >>> optimizer = torch.optim.SGD(layer.parameters(), lr=1.0)
        >>> layer.weight.grad = torch.tensor([[3.0, 4.0]])  # norm 5
        >>> before = layer.weight.detach().clone()
        >>> taken = clipped_step(layer, 1.0, optimizer)
        >>> taken, [round(v, 4) for v in (before - layer.weight).flatten().tolist()]
        (True, [0.6, 0.8])
        >>> layer.weight.grad = torch.tensor([[float("inf"), 0.0]])
        >>> clipped_step(layer, 1.0, optimizer)
        False
    """
    parameters = [p for p in model.parameters() if p.grad is not None]
    total = nn.utils.clip_grad_norm_(parameters, max_norm, error_if_nonfinite=False)
    if not torch.isfinite(total):
        optimizer.zero_grad(set_to_none=True)
        return False
    optimizer.step()
    return True
