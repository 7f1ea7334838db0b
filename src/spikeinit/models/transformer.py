r"""``SpikingTransformer``: a small spiking vision transformer (Spikformer / Spike-driven).

The network runs layer-major over all time steps, as :class:`~spikeinit.models.SpikingCNN`
does: inputs are currents ``(T, B, C, H, W)`` (a static image repeated over the steps with
``image.expand(T, ...)`` goes through the patch stem once), every Linear runs one GEMM over
all ``T * B * N`` token rows (:class:`~spikeinit.engine.event_linear.EventLinear`, event-driven
on sparse spikes), every LIF runs the fused multi-step engine, and every forward starts from
rest. Modules are registered in the order they run.

The pieces (``S``: a multi-step :class:`~spikeinit.neurons.LIF`; ``N``: a BatchNorm over the
channels when ``norm="batch"``, nothing when ``norm="none"``; tokens are ``(T, B, N, D)``):

* **Patch stem**: ``x_0 = S(N(\mathrm{Conv}_{p \times p,\ \text{stride } p}(I) + P))``, one
  token per ``p x p`` patch, ``N = (H / p)(W / p)`` tokens of ``D`` channels; ``P`` is a
  learned position embedding (one ``D``-vector per patch, zero at init).
* **Projection** (:class:`SpikingProjection`): ``S(N(x W^\top))``, a bias-free Linear over
  the token channels.
* **Spiking self-attention** (``attention="ssa"``, Spikformer, Zhou et al. 2023): with binary
  ``Q, K, V = S(N(x W_{q,k,v}^\top))`` split into ``h`` heads of ``d = D / h`` channels,

  .. math::

      A = S_{attn}\big(s \cdot Q K^\top V\big),\qquad
      y = S(N(A\, W_o^\top)),

  no softmax; ``Q K^\top V`` is computed as ``Q (K^\top V)`` (``2 N d^2`` products per head)
  when there are more tokens than head channels, else as ``(Q K^\top) V`` (``2 N^2 d``).
* **Spike-driven self-attention** (``attention="sdsa"``, Yao et al. 2023, SDSA-V1):

  .. math::

      A = Q \odot S_{attn}\Big(s \sum_{n=1}^{N} K_n \odot V_n\Big),\qquad
      y = S(N(A\, W_o^\top)),

  the sum over tokens gives one ``D``-vector per sample and step, which masks every token of
  ``Q`` (no head split is needed: every operation is per channel).
* **MLP**: ``y = S(N(S(N(x W_1^\top)) W_2^\top))``, hidden width ``r D``.
* **Residuals, spike-add** (SEW-style, as Spikformer): ``x_l' = x_{l-1} + \mathrm{Attn}(x_{l-1})``,
  ``x_l = x_l' + \mathrm{MLP}(x_l')``. Every branch ends in a LIF, so the stream is a sum of
  spikes (integers from 0 to ``2l + 1``), and every projection reads that stream.
* **Head**: the stream averaged over the tokens at each step, then ``Linear(D, classes) ->
  LIF`` (``output_lif``); the output is its spikes ``(T, B, classes)``, and the training
  readouts average over the steps (the membrane or the spike counts).

The attention scale ``s`` (:attr:`SpikingSelfAttention.scale`, a float kept in the
``state_dict``) and the attention neurons (``attn_lif``, threshold ``attn_threshold``) are
part of the initialization, as a weight is.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from spikeinit._validation import check_choice, check_positive, check_positive_int
from spikeinit.engine.conv_layout import conv_frames
from spikeinit.engine.event_linear import EventLinear
from spikeinit.engine.layout import once_over_time, repeated_over_time
from spikeinit.errors import InvalidArgumentError
from spikeinit.models.cnn import NORMS
from spikeinit.models.time_distributed import check_frame_shape, check_frames
from spikeinit.neurons.lif import LIF, reset_states

#: The attention kinds: Spikformer's spiking self-attention and the spike-driven one.
ATTENTIONS = ("ssa", "sdsa")
#: The attention scale ``s`` of each kind when none is given: Spikformer's 0.125 for ``ssa``,
#: 1 (no scale, as Yao et al.) for ``sdsa``.
DEFAULT_SCALES = {"ssa": 0.125, "sdsa": 1.0}
#: The threshold of the attention neurons when none is given (0.5 in both papers).
DEFAULT_ATTENTION_THRESHOLD = 0.5


class TokenNorm(nn.Module):
    """``BatchNorm1d`` over the channels of tokens ``(..., D)``: each channel standardised over
    all steps, samples and tokens, ``y = gamma (x - mean) / std + b``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(check_positive_int("channels", channels))

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.reshape(-1, x.shape[-1])).view(x.shape)


class SpikingProjection(nn.Module):
    """``LIF(N(x W^T))`` on tokens ``(T, B, N, in_features)``: a bias-free
    :class:`~spikeinit.engine.event_linear.EventLinear` (one GEMM over all ``T * B * N``
    rows), a :class:`TokenNorm` when ``norm="batch"``, then the neurons.

    Example:
        >>> import torch
        >>> projection = SpikingProjection(8, 4)
        >>> projection(torch.rand(3, 2, 5, 8)).shape
        torch.Size([3, 2, 5, 4])
    """

    def __init__(self, in_features: int, out_features: int, norm: str = "none",
                 **lif_options: Any) -> None:
        super().__init__()
        check_choice("norm", norm, NORMS)
        self.linear = EventLinear(check_positive_int("in_features", in_features),
                                  check_positive_int("out_features", out_features), bias=False)
        self.norm = TokenNorm(out_features) if norm == "batch" else None
        self.neurons = LIF(**lif_options)

    def forward(self, x: Tensor) -> Tensor:
        current = self.linear(x)
        if self.norm is not None:
            current = self.norm(current)
        return self.neurons(current)


class PatchEmbedding(nn.Conv2d):
    """``Conv2d(C, D, p, stride=p)`` plus a learned position embedding: ``y = W * x + P``,
    ``P`` of shape ``(D, h, w)``, one vector per patch, zero at init (so the init sees a plain
    bias-free convolution). The addition runs inside the layer, so the graph of
    :func:`spikeinit.initialize` sees one synaptic layer.

    Example:
        >>> import torch
        >>> embed = PatchEmbedding(3, 8, patch=4, grid=(2, 2))
        >>> y = embed(torch.rand(5, 3, 8, 8))
        >>> y.shape, embed.position.shape, float(embed.position.abs().sum())
        (torch.Size([5, 8, 2, 2]), torch.Size([8, 2, 2]), 0.0)
    """

    def __init__(self, in_channels: int, channels: int, patch: int,
                 grid: tuple[int, int]) -> None:
        super().__init__(check_positive_int("in_channels", in_channels),
                         check_positive_int("channels", channels),
                         check_positive_int("patch", patch), stride=patch, bias=False)
        rows, columns = (check_positive_int(f"grid[{i}]", g) for i, g in enumerate(grid))
        self.position = nn.Parameter(torch.zeros(channels, rows, columns))

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x) + self.position


class PatchStem(nn.Module):
    """``LIF(N(Conv2d(C, D, p, stride=p)(x) [+ P]))`` on ``(T, B, C, H, W)``, returned as
    tokens ``(T, B, (H/p)(W/p), D)`` in row-major patch order.

    With ``grid=(H/p, W/p)`` the convolution is a :class:`PatchEmbedding` (a learned position
    embedding ``P`` added to its output); without, a plain ``Conv2d``, and the tokens carry no
    position. The convolution (and norm) runs once over all ``T * B`` frames, or once over
    ``B`` frames when the input repeats one frame over time (stride 0).

    Example:
        >>> import torch
        >>> stem = PatchStem(3, 16, patch=4)
        >>> stem(torch.rand(2, 5, 3, 32, 32)).shape  # 8 x 8 patches of 16 channels
        torch.Size([2, 5, 64, 16])
    """

    def __init__(self, in_channels: int, channels: int, patch: int, norm: str = "none",
                 grid: tuple[int, int] | None = None, **lif_options: Any) -> None:
        super().__init__()
        check_choice("norm", norm, NORMS)
        self.patch = check_positive_int("patch", patch)
        if grid is None:
            self.conv = nn.Conv2d(check_positive_int("in_channels", in_channels),
                                  check_positive_int("channels", channels), patch,
                                  stride=patch, bias=False)
        else:
            self.conv = PatchEmbedding(in_channels, channels, patch, grid)
        self.norm = nn.BatchNorm2d(channels) if norm == "batch" else None
        self.neurons = LIF(**lif_options)

    def _frames(self, frames: Tensor) -> Tensor:
        currents = conv_frames(self.conv, frames)
        return currents if self.norm is None else self.norm(currents)

    def forward(self, x: Tensor) -> Tensor:
        if repeated_over_time(x):  # a static frame: conv (and norm) once, on B frames
            currents = once_over_time(self._frames, x)
        else:
            currents = self._frames(x.flatten(0, 1)).unflatten(0, x.shape[:2])
        spikes = self.neurons(currents)  # (T, B, D, h, w)
        return spikes.flatten(3).transpose(2, 3)  # (T, B, h * w, D)


class SpikingSelfAttention(nn.Module):
    r"""Spiking self-attention on tokens ``(T, B, N, D)``: ``"ssa"`` (Spikformer) or
    ``"sdsa"`` (spike-driven, Yao et al. 2023); the formulas are in the module docstring.

    ``q``, ``k``, ``v`` and ``proj`` are :class:`SpikingProjection` s; ``attn_lif`` is the
    attention population, driven by ``s \cdot Q K^\top V`` (``"ssa"``, ``N x D`` neurons) or
    by ``s \sum_n K_n \odot V_n`` (``"sdsa"``, ``D`` neurons per sample).

    Attributes:
        scale: the attention scale ``s``, a float (stored in the ``state_dict``); set it as
            any attribute, ``attention.scale = 0.2``.
        attn_lif: the attention neurons (threshold ``attn_threshold``).
        kind, heads: the attention kind and the number of heads (``"ssa"`` splits the
            channels into ``heads`` groups of ``D / heads``; ``"sdsa"`` is per channel).

    Example:
        >>> import torch
        >>> attention = SpikingSelfAttention(16, heads=2)
        >>> attention(torch.rand(3, 2, 5, 16)).shape
        torch.Size([3, 2, 5, 16])
        >>> attention.scale, attention.attn_lif.threshold
        (0.125, 0.5)
    """

    def __init__(self, channels: int, heads: int = 1, kind: str = "ssa", norm: str = "none",
                 scale: float | None = None,
                 attn_threshold: float = DEFAULT_ATTENTION_THRESHOLD,
                 **lif_options: Any) -> None:
        super().__init__()
        channels = check_positive_int("channels", channels)
        self.heads = check_positive_int("heads", heads)
        self.kind = check_choice("attention", kind, ATTENTIONS)
        if channels % self.heads:
            raise InvalidArgumentError(
                f"heads must divide the embedding width {channels}, got heads={heads!r}")
        self.scale = float(DEFAULT_SCALES[kind] if scale is None else check_positive(
            "scale", scale))
        # registered in the order they run
        self.q = SpikingProjection(channels, channels, norm, **lif_options)
        self.k = SpikingProjection(channels, channels, norm, **lif_options)
        self.v = SpikingProjection(channels, channels, norm, **lif_options)
        self.attn_lif = LIF(**{**lif_options, "threshold": attn_threshold})
        self.proj = SpikingProjection(channels, channels, norm, **lif_options)

    def get_extra_state(self) -> dict[str, float]:
        return {"scale": float(self.scale)}

    def set_extra_state(self, state: dict[str, float]) -> None:
        self.scale = float(state["scale"])

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.q(x), self.k(x), self.v(x)
        if self.kind == "ssa":
            attended = self.attn_lif(self.ssa_current(q, k, v))
        else:
            attended = q * self.attn_lif(self.sdsa_current(k, v)).unsqueeze(2)
        return self.proj(attended)

    def ssa_current(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """``s * Q K^T V`` per head, for ``(T, B, N, D)`` spikes, as ``(T, B, N, D)``."""
        tokens, channels = q.shape[-2:]
        width = channels // self.heads
        q, k, v = (t.unflatten(-1, (self.heads, width)).transpose(-3, -2) for t in (q, k, v))
        keys = k.transpose(-2, -1)
        product = q @ (keys @ v) if tokens > width else (q @ keys) @ v
        return product.transpose(-3, -2).flatten(-2) * self.scale

    def sdsa_current(self, k: Tensor, v: Tensor) -> Tensor:
        """``s * sum over tokens of K * V`` for ``(T, B, N, D)`` spikes, as ``(T, B, D)``."""
        return (k * v).sum(dim=-2) * self.scale


class SpikingMLPBlock(nn.Module):
    """The transformer's MLP on tokens: ``fc2(fc1(x))``, two :class:`SpikingProjection` s
    ``D -> hidden -> D``."""

    def __init__(self, channels: int, hidden: int, norm: str = "none",
                 **lif_options: Any) -> None:
        super().__init__()
        self.fc1 = SpikingProjection(channels, hidden, norm, **lif_options)
        self.fc2 = SpikingProjection(hidden, channels, norm, **lif_options)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.fc1(x))


class TransformerBlock(nn.Module):
    """``x' = x + attention(x)``, ``y = x' + mlp(x')`` (spike-add residuals: both branches
    end in a LIF).

    Example:
        >>> import torch
        >>> block = TransformerBlock(16, heads=2, attention="sdsa")
        >>> block(torch.rand(3, 2, 5, 16)).shape
        torch.Size([3, 2, 5, 16])
    """

    def __init__(self, channels: int, heads: int = 1, attention: str = "ssa",
                 mlp_ratio: int = 4, norm: str = "none", scale: float | None = None,
                 attn_threshold: float = DEFAULT_ATTENTION_THRESHOLD,
                 **lif_options: Any) -> None:
        super().__init__()
        hidden = check_positive_int("mlp_ratio", mlp_ratio) * channels
        self.attention = SpikingSelfAttention(channels, heads, attention, norm, scale,
                                              attn_threshold, **lif_options)
        self.mlp = SpikingMLPBlock(channels, hidden, norm, **lif_options)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attention(x)
        return x + self.mlp(x)


class SpikingTransformer(nn.Module):
    r"""A small spiking vision transformer: patch stem, ``depth`` blocks of spiking
    self-attention and MLP with spike-add residuals, then a ``Linear -> LIF`` head on the
    tokens' mean (see the module docstring for the formulas).

    Args:
        input_shape: ``(C, H, W)`` of one frame; ``H`` and ``W`` multiples of ``patch``.
        classes: number of output neurons (>= 1).
        depth: number of transformer blocks (>= 1).
        width: the embedding width ``D`` (channels of every token).
        heads: attention heads (must divide ``width``; ``"sdsa"`` is per channel and ignores
            the split).
        patch: patch size ``p``: ``(H / p)(W / p)`` tokens.
        attention: ``"ssa"`` (Spikformer, default) or ``"sdsa"`` (spike-driven).
        norm: ``"none"`` (default) or ``"batch"``: a BatchNorm over the channels after the
            stem conv and every Linear but the head.
        mlp_ratio: the MLP's hidden width is ``mlp_ratio * width``.
        scale: the attention scale ``s`` (``None``: :data:`DEFAULT_SCALES` of the kind).
        attn_threshold: threshold of the attention neurons ``attn_lif``.
        position: whether the stem adds a learned position embedding (zero at init) to the
            patches' currents (:class:`PatchEmbedding`); without it the blocks and the mean
            over tokens see an unordered set of patches.
        **lif_options: passed to every :class:`~spikeinit.neurons.LIF` (``beta``,
            ``threshold``, ``surrogate``, ...); the attention neurons take ``attn_threshold``
            instead of ``threshold``.

    Attributes:
        stem: the :class:`PatchStem`.
        blocks: the :class:`TransformerBlock` s; ``blocks[i].attention`` has ``scale`` and
            ``attn_lif``.
        classifier, output_lif: the head.

    Example:
        >>> import torch
        >>> net = SpikingTransformer((3, 32, 32), 10, depth=2, width=32, heads=2, patch=8)
        >>> net(torch.rand(4, 2, 3, 32, 32)).shape
        torch.Size([4, 2, 10])
        >>> net.tokens, len(net.lif_layers)  # stem, 2 x (q, k, v, attn, proj, fc1, fc2), head
        (16, 16)
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        classes: int = 10,
        depth: int = 2,
        width: int = 64,
        heads: int = 4,
        patch: int = 4,
        attention: str = "ssa",
        norm: str = "none",
        mlp_ratio: int = 4,
        scale: float | None = None,
        attn_threshold: float = DEFAULT_ATTENTION_THRESHOLD,
        position: bool = True,
        **lif_options: Any,
    ) -> None:
        super().__init__()
        shape = check_frame_shape(input_shape)
        self.input_shape = shape
        self.classes = check_positive_int("classes", classes)
        self.depth = check_positive_int("depth", depth)
        self.width = check_positive_int("width", width)
        self.patch = check_positive_int("patch", patch)
        self.attention_kind = check_choice("attention", attention, ATTENTIONS)
        self.norm_kind = check_choice("norm", norm, NORMS)
        if shape[1] % self.patch or shape[2] % self.patch:
            raise InvalidArgumentError(
                f"patch must divide the image size {shape[1]}x{shape[2]}, got patch={patch!r}")
        grid = (shape[1] // self.patch, shape[2] // self.patch)
        self.tokens = grid[0] * grid[1]
        self.stem = PatchStem(shape[0], self.width, self.patch, norm,
                              grid if position else None, **lif_options)
        self.blocks = nn.ModuleList(
            TransformerBlock(self.width, heads, attention, mlp_ratio, norm, scale,
                             attn_threshold, **lif_options)
            for _ in range(self.depth))
        self.classifier = EventLinear(self.width, self.classes, bias=False)
        self.output_lif = LIF(**lif_options)

    @property
    def attentions(self) -> list[SpikingSelfAttention]:
        """The attention module of every block, in forward order."""
        return [block.attention for block in self.blocks]

    @property
    def lif_layers(self) -> list[LIF]:
        """All LIF layers in forward order (stem; per block q, k, v, attn, proj, fc1, fc2;
        output)."""
        return [module for module in self.modules() if isinstance(module, LIF)]

    def forward(self, currents: Tensor) -> Tensor:
        *_, last = self.iter_layers(currents)
        return last

    def iter_layers(self, currents: Tensor) -> Iterator[Tensor]:
        """Yield the stem's tokens, every block's output stream ``(T, B, N, D)``, then the
        output spikes ``(T, B, classes)``."""
        check_frames(currents, self.input_shape)
        reset_states(self)
        x = self.stem(currents)
        yield x
        for block in self.blocks:
            x = block(x)
            yield x
        yield self.output_lif(self.classifier(x.mean(dim=2)))

