r"""Spiking attention: the current of the attention neuron, computed from the spike matrices.

Spiking transformers compute attention from binary matrices and use no softmax. Per head,
:math:`Q, K, V \in \{0,1\}^{N\times d}` (:math:`N` tokens, head size :math:`d`) are spikes at
rates :math:`q, k, v`.

**Spiking self-attention** (SSA, Spikformer): the attention neuron of output entry
:math:`(i, c)` receives :math:`s\,X_{ic}`, where :math:`s` is the scale and

.. math::

    X_{ic} = \big(Q K^\top V\big)_{ic} = \sum_{j=1}^{N}\sum_{m=1}^{d} Q_{im} K_{jm} V_{jc}.

The orders :math:`Q (K^\top V)` and :math:`(Q K^\top) V`, and the channel-first
:math:`(V K^\top) Q` (SpikingJelly's ``SpikingSelfAttention``, Q, K, V stored as
:math:`d \times N`), all give these entries (:class:`AttentionProduct`).

**Spike-driven self-attention** (SDSA, Yao et al. 2023): the neuron of channel :math:`c` receives
the column sum :math:`Y_c = \sum_j K_{jc} V_{jc}` of :math:`K \odot V`. Its spikes
:math:`g_c` mask the queries, and the output is :math:`Q \odot g`
(:class:`SpikeDrivenProduct`, :func:`masked_output_moments`). :math:`Y` is :math:`X` with
:math:`d = 1` and :math:`Q \equiv 1`, so one derivation covers both.

**What is assumed.** Q, K and V are independent of each other. Within a matrix the entries are
exchangeable, and any two of them have correlation :math:`c` (:class:`SpikeMatrix`), so
:math:`E[x_a x_b] = r_2 = r^2 + c\,r(1-r)`. The model behind :math:`c` is a rate common to the
whole matrix of one sample, Beta-distributed with mean :math:`r`. With :math:`c = 0` the
entries are independent Bernoulli spikes.

**Moments** (:func:`attention_moments`). :math:`X` is a sum of :math:`Nd` products. Two of them
share a query entry when :math:`m = m'`, and a value entry when :math:`j = j'`. Counting the
four cases gives

.. math::

    E[X] = N d\,q k v,

.. math::

    E[X^2] = N d\,q k v + N d (d-1)\,q_2 k_2 v + N (N-1) d\,q k_2 v_2
             + N (N-1) d (d-1)\,q_2 k_2 v_2,

so :math:`\mathrm{Var}[X] = E[X^2] - E[X]^2`. For independent spikes this is
:math:`Nd\,[qkv + (d-1)q^2k^2v + (N-1)qk^2v^2 - (N+d-1)q^2k^2v^2]`. The terms that share a
factor are covariances, and they dominate: at :math:`N = 64`, :math:`d = 32` and all rates 0.3
the variance is 7.1 times that of independent terms, :math:`Nd\,p(1-p)` with :math:`p = qkv`.

**Exact distribution** (:func:`attention_count_distribution`). Let :math:`M` be the number of
active entries of the query row :math:`i`, and :math:`L` that of the value column :math:`c`.
Given them, :math:`X` counts the active entries of an :math:`L \times M` block of K:

.. math::

    X \mid L, M \sim \mathrm{BetaBin}(LM;\,k, c_k), \qquad
    L \sim \mathrm{BetaBin}(N;\,v, c_v), \qquad M \sim \mathrm{BetaBin}(d;\,q, c_q),

where :math:`\mathrm{BetaBin}(n; r, c)` has mean :math:`nr` and pairwise correlation :math:`c`
(the binomial when :math:`c = 0`). :math:`X` is a count, and the neuron fires when
:math:`sX \ge \theta`, i.e. when :math:`X \ge n = \lceil\theta/s\rceil`, so its rate
:math:`P(X \ge n)` takes one of a discrete set of values.

**Rate** (:func:`attention_rate`) of a neuron that thresholds its current once (one step,
as in :mod:`spikeinit.theory.residual`), exact, or Gaussian with the continuity correction
:math:`P(X \ge n) \approx Q\big((n - \tfrac12 - E[X])/\sqrt{\mathrm{Var}[X]}\big)`. The Gaussian
fails where :math:`E[X] = Ndqkv` is a few counts or less (rates 0.02-0.1 with
:math:`Nd \le 512`): :math:`X` is then mostly 0 and its few values are not a Gaussian's. It
also fails in the tails, because the product :math:`LM` makes :math:`X` skewed to the right.

**Inverse** (:func:`attention_scale_for_rate`, :func:`attention_threshold_for_rate`): the
count :math:`n` whose rate :math:`P(X \ge n)` is nearest to the target in
:math:`|\log(P/r^*)|`. The scale is then :math:`s = \theta/(n - \tfrac12)`, or the threshold
:math:`\theta = s\,(n - \tfrac12)`. The half count keeps :math:`sX` away from :math:`\theta`,
so the neuron fires on :math:`X \ge n` whether it compares with :math:`\ge` (SpikingJelly) or
:math:`>` (snnTorch), and float rounding does not change that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
from scipy import stats

from spikeinit._validation import check_open_unit_interval, check_positive, check_positive_int
from spikeinit.errors import InvalidArgumentError
from spikeinit.theory.residual import gaussian_sum_rate

__all__ = [
    "AttentionOperatingPoint",
    "AttentionProduct",
    "CurrentMoments",
    "SpikeDrivenProduct",
    "SpikeMatrix",
    "attention_count_distribution",
    "attention_moments",
    "attention_rate",
    "attention_scale_for_rate",
    "attention_threshold_for_rate",
    "masked_output_moments",
]

Method = Literal["exact", "gaussian"]
_METHODS = ("exact", "gaussian")
#: Probabilities below this (relative to the largest) are left out of the exact distribution.
_NEGLIGIBLE = 1e-15
#: A ratio theta/scale this close to an integer counts as that integer.
_INTEGER_TOLERANCE = 1e-9


@dataclass(frozen=True)
class SpikeMatrix:
    r"""A matrix of spikes at ``rate`` whose entries have pairwise ``correlation`` :math:`c`.

    The correlation comes from a rate common to the whole matrix of one sample, drawn from a
    Beta distribution of mean :math:`r`. Two entries then meet with probability
    :math:`r_2 = r^2 + c\,r(1-r)` (:attr:`pair_moment`). With ``correlation=0`` the entries are
    independent Bernoulli spikes.

    Example:
        >>> SpikeMatrix(0.1).pair_moment, round(SpikeMatrix(0.1, 0.5).pair_moment, 6)
        (0.010000000000000002, 0.055)
    """

    rate: float
    correlation: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", check_open_unit_interval("rate", self.rate))
        correlation = float(self.correlation)
        if not 0.0 <= correlation < 1.0:
            raise InvalidArgumentError(
                f"correlation must lie in [0, 1), got {self.correlation!r}")
        object.__setattr__(self, "correlation", correlation)

    @property
    def pair_moment(self) -> float:
        r""":math:`E[x_a x_b] = r^2 + c\,r(1-r)` for two distinct entries."""
        return self.rate**2 + self.correlation * self.rate * (1.0 - self.rate)

    def count_distribution(self, size: int) -> np.ndarray:
        r"""The distribution of the number of active entries among ``size`` of them:
        :math:`\mathrm{BetaBin}(\text{size};\, r, c)`, the binomial when :math:`c = 0`.

        Example:
            >>> SpikeMatrix(0.5).count_distribution(2).round(12).tolist()
            [0.25, 0.5, 0.25]
        """
        return _count_pmf(np.arange(size + 1), np.array([size]), self)[0]


@dataclass(frozen=True)
class AttentionProduct:
    r"""One head of spiking self-attention (SSA): an entry of :math:`Q K^\top V`.

    ``tokens`` is :math:`N` and ``head_dim`` is :math:`d`. ``query``, ``key`` and ``value``
    are the spike matrices Q, K and V. See the module docstring for the moments.

    Example:
        >>> head = AttentionProduct(64, 32, SpikeMatrix(0.1), SpikeMatrix(0.1), SpikeMatrix(0.1))
        >>> round(attention_moments(head).mean, 6)  # N d q k v
        2.048
    """

    tokens: int
    head_dim: int
    query: SpikeMatrix
    key: SpikeMatrix
    value: SpikeMatrix

    def __post_init__(self) -> None:
        object.__setattr__(self, "tokens", check_positive_int("tokens", self.tokens))
        object.__setattr__(self, "head_dim", check_positive_int("head_dim", self.head_dim))
        _check_spike_matrices(query=self.query, key=self.key, value=self.value)


@dataclass(frozen=True)
class SpikeDrivenProduct:
    r"""Spike-driven self-attention (SDSA): the column sum :math:`\sum_j K_{jc} V_{jc}`.

    ``tokens`` is :math:`N`. The sum is :class:`AttentionProduct`'s :math:`X` with :math:`d = 1`
    and every query entry 1, so :math:`E[Y] = Nkv` and
    :math:`E[Y^2] = Nkv + N(N-1)\,k_2 v_2`.

    Example:
        >>> kv = SpikeDrivenProduct(64, SpikeMatrix(0.2), SpikeMatrix(0.3))
        >>> moments = attention_moments(kv)
        >>> round(moments.mean, 6), round(moments.variance, 6)  # Bin(64, 0.06)
        (3.84, 3.6096)
    """

    tokens: int
    key: SpikeMatrix
    value: SpikeMatrix

    def __post_init__(self) -> None:
        object.__setattr__(self, "tokens", check_positive_int("tokens", self.tokens))
        _check_spike_matrices(key=self.key, value=self.value)


Product = AttentionProduct | SpikeDrivenProduct


@dataclass(frozen=True)
class CurrentMoments:
    r"""The mean and variance of a current (or of a count, at scale 1).

    Example:
        >>> CurrentMoments(mean=2.0, variance=9.0).std
        3.0
    """

    mean: float
    variance: float

    @property
    def std(self) -> float:
        return math.sqrt(self.variance)


@dataclass(frozen=True)
class AttentionOperatingPoint:
    r"""A scale and threshold that put the attention neuron near a target rate.

    The neuron fires when the product count :math:`X` is at least ``count`` (:math:`n`), and
    ``scale * (count - 1/2) == threshold``. ``rate`` is the predicted :math:`P(X \ge n)`, the
    one nearest to the target that a count threshold can give.

    Example:
        >>> head = AttentionProduct(64, 32, SpikeMatrix(0.1), SpikeMatrix(0.1), SpikeMatrix(0.1))
        >>> point = attention_scale_for_rate(head, 0.1, threshold=0.5)
        >>> point.count, round(point.scale, 4), round(point.rate, 3)
        (5, 0.1111, 0.109)
    """

    scale: float
    threshold: float
    count: int
    rate: float


def attention_moments(product: Product, scale: float = 1.0) -> CurrentMoments:
    r"""The mean and variance of the current :math:`sX` of one attention neuron.

    Exact for the model of the module docstring, with the covariances of terms that share a
    query or value entry:

    .. math::

        E[sX] = s\,N d\,q k v, \qquad
        \mathrm{Var}[sX] = s^2\big(E[X^2] - E[X]^2\big),

    .. math::

        E[X^2] = N d\,q k v + N d (d-1)\,q_2 k_2 v + N (N-1) d\,q k_2 v_2
                 + N (N-1) d (d-1)\,q_2 k_2 v_2.

    Example:
        >>> r = SpikeMatrix(0.3)
        >>> m = attention_moments(AttentionProduct(64, 32, r, r, r))
        >>> round(m.mean, 4), round(m.variance, 2)
        (55.296, 381.27)
        >>> round(m.variance / (64 * 32 * 0.027 * 0.973), 2)  # independent terms would give 1
        7.09
    """
    scale = check_positive("scale", scale)
    tokens, head_dim = _sizes(product)
    q, q2 = _query_moments(product)
    k, k2 = product.key.rate, product.key.pair_moment
    v, v2 = product.value.rate, product.value.pair_moment
    n, d = tokens, head_dim
    mean = n * d * q * k * v
    second = (n * d * q * k * v + n * d * (d - 1) * q2 * k2 * v + n * (n - 1) * d * q * k2 * v2
              + n * (n - 1) * d * (d - 1) * q2 * k2 * v2)
    return CurrentMoments(mean=scale * mean, variance=scale**2 * max(second - mean**2, 0.0))


def attention_count_distribution(product: Product) -> np.ndarray:
    r"""The exact distribution :math:`P(X = x)`, :math:`x = 0, 1, \dots`, of the product count.

    .. math::

        P(X = x) = \sum_{L, M} P(L)\,P(M)\,\mathrm{BetaBin}(x;\, LM, k, c_k)

    with :math:`L \sim \mathrm{BetaBin}(N; v, c_v)` active value entries in the column and
    :math:`M \sim \mathrm{BetaBin}(d; q, c_q)` active query entries in the row
    (:math:`M = 1` for :class:`SpikeDrivenProduct`). Values of :math:`L` and :math:`M` with a
    probability below :math:`10^{-15}` of the largest are left out, and the array ends at the
    largest count that remains.

    Example:
        >>> kv = SpikeDrivenProduct(4, SpikeMatrix(0.5), SpikeMatrix(0.5))  # Bin(4, 1/4)
        >>> attention_count_distribution(kv).round(6).tolist()
        [0.316406, 0.421875, 0.210938, 0.046875, 0.003906]
    """
    _sizes(product)
    return _count_distribution(product).copy()


@lru_cache(maxsize=128)
def _count_distribution(product: Product) -> np.ndarray:
    tokens, head_dim = _sizes(product)
    actives, actives_pmf = _likely_counts(product.value.count_distribution(tokens))
    if isinstance(product, SpikeDrivenProduct):
        dims, dims_pmf = np.array([1]), np.array([1.0])
    else:
        dims, dims_pmf = _likely_counts(product.query.count_distribution(head_dim))
    blocks = (actives[:, None] * dims[None, :]).ravel()
    weights = (actives_pmf[:, None] * dims_pmf[None, :]).ravel()
    sizes, where = np.unique(blocks, return_inverse=True)
    size_weights = np.bincount(where, weights=weights)
    counts = np.arange(int(sizes.max()) + 1)
    pmf = size_weights @ _count_pmf(counts, sizes, product.key)
    return pmf / pmf.sum()


def attention_rate(product: Product, threshold: float, scale: float = 1.0,
                   method: Method = "exact", inclusive: bool = True) -> float:
    r"""The rate at which the attention neuron fires on its current :math:`sX` (one step).

    It fires when :math:`sX \ge \theta` (``inclusive``, SpikingJelly's Heaviside) or when
    :math:`sX > \theta` (snnTorch), i.e. when :math:`X \ge n`, with
    :math:`n = \lceil\theta/s\rceil` or :math:`\lfloor\theta/s\rfloor + 1`. ``method`` is
    ``"exact"`` (:func:`attention_count_distribution`) or ``"gaussian"``, the normal
    approximation with the continuity correction (:func:`~spikeinit.theory.gaussian_sum_rate`):

    .. math::

        P(X \ge n) \approx Q\Big(\frac{n - \tfrac12 - E[X]}{\sqrt{\mathrm{Var}[X]}}\Big).

    Spikformer's :math:`\theta = 0.5`, :math:`s = 0.125` gives :math:`n = 4`.

    Example:
        >>> r = SpikeMatrix(0.1)
        >>> head = AttentionProduct(64, 32, r, r, r)
        >>> round(attention_rate(head, 0.5, 0.125), 4)
        0.1931
        >>> round(attention_rate(head, 0.5, 0.125, method="gaussian"), 4)
        0.2275
    """
    threshold = check_positive("threshold", threshold)
    scale = check_positive("scale", scale)
    _check_method(method)
    return float(_tail_rates(product, method, _count_threshold(threshold / scale, inclusive)))


def attention_scale_for_rate(product: Product, rate: float, threshold: float,
                             method: Method = "exact") -> AttentionOperatingPoint:
    r"""The scale :math:`s` that puts the attention neuron nearest to ``rate``, at ``threshold``.

    :math:`n` is the count whose rate :math:`P(X \ge n)` (``method`` as in
    :func:`attention_rate`) is nearest to :math:`r^*` in :math:`|\log(P/r^*)|`, and
    :math:`s = \theta/(n - \tfrac12)`. The count lattice limits which rates are reachable, and
    the result's ``rate`` says which one was reached. For example, when :math:`P(X \ge 1)` is
    below :math:`r^*` it is :math:`P(X \ge 1)`.

    Example:
        >>> r = SpikeMatrix(0.1)
        >>> point = attention_scale_for_rate(AttentionProduct(64, 32, r, r, r), 0.1, 0.5)
        >>> round(point.scale * (point.count - 0.5), 12)  # = threshold
        0.5
    """
    threshold = check_positive("threshold", threshold)
    count, reached = _count_for_rate(product, rate, method)
    return AttentionOperatingPoint(scale=threshold / (count - 0.5), threshold=threshold,
                                   count=count, rate=reached)


def attention_threshold_for_rate(product: Product, rate: float, scale: float = 1.0,
                                 method: Method = "exact") -> AttentionOperatingPoint:
    r"""The threshold :math:`\theta = s\,(n - \tfrac12)` that puts the attention neuron nearest
    to ``rate`` at ``scale``, with :math:`n` as in :func:`attention_scale_for_rate`.

    The spike-driven attention has no scale, so there the threshold is what can be set.

    Example:
        >>> kv = SpikeDrivenProduct(64, SpikeMatrix(0.2), SpikeMatrix(0.2))
        >>> point = attention_threshold_for_rate(kv, 0.1)
        >>> point.count, point.threshold, round(point.rate, 3)
        (5, 4.5, 0.113)
    """
    scale = check_positive("scale", scale)
    count, reached = _count_for_rate(product, rate, method)
    return AttentionOperatingPoint(scale=scale, threshold=scale * (count - 0.5), count=count,
                                   rate=reached)


def masked_output_moments(query: SpikeMatrix, gate_rate: float) -> CurrentMoments:
    r"""The mean and variance of an output entry :math:`Q_{ic}\,g_c` of the spike-driven
    attention, where :math:`g_c` is the gate spike of channel :math:`c`, firing at ``gate_rate``.

    Q is independent of the gate, which is computed from K and V, so the output is a spike at rate
    :math:`q\,r_g`, with mean :math:`q\,r_g` and variance :math:`q\,r_g(1 - q\,r_g)`. Two tokens
    of the same channel share the gate. Their covariance is :math:`r_g q_2 - q^2 r_g^2`, the
    term a layer that sums over tokens (pooling) sees.

    Example:
        >>> m = masked_output_moments(SpikeMatrix(0.2), 0.5)
        >>> round(m.mean, 6), round(m.variance, 6)
        (0.1, 0.09)
    """
    gate_rate = check_open_unit_interval("gate_rate", gate_rate)
    rate = query.rate * gate_rate
    return CurrentMoments(mean=rate, variance=rate * (1.0 - rate))


# ---- helpers ------------------------------------------------------------------------------------

def _check_spike_matrices(**matrices: object) -> None:
    for name, matrix in matrices.items():
        if not isinstance(matrix, SpikeMatrix):
            raise InvalidArgumentError(f"{name} must be a SpikeMatrix, got {matrix!r}")


def _sizes(product: Product) -> tuple[int, int]:
    if isinstance(product, AttentionProduct):
        return product.tokens, product.head_dim
    if isinstance(product, SpikeDrivenProduct):
        return product.tokens, 1
    raise InvalidArgumentError(
        f"product must be an AttentionProduct or a SpikeDrivenProduct, got {product!r}")


def _query_moments(product: Product) -> tuple[float, float]:
    """``(q, q_2)``: the query's rate and pair moment; 1 and 1 for the spike-driven sum."""
    if isinstance(product, SpikeDrivenProduct):
        return 1.0, 1.0
    return product.query.rate, product.query.pair_moment


def _check_method(method: str) -> None:
    if method not in _METHODS:
        raise InvalidArgumentError(f"method must be one of {_METHODS}, got {method!r}")


def _count_pmf(counts: np.ndarray, sizes: np.ndarray, spikes: SpikeMatrix) -> np.ndarray:
    """``(len(sizes), len(counts))``: the number of active entries among ``size`` of ``spikes``,
    beta-binomial for a correlated matrix (its Beta has ``alpha + beta = 1/c - 1``)."""
    counts, sizes = counts[None, :], sizes[:, None]
    if spikes.correlation == 0.0:
        return stats.binom.pmf(counts, sizes, spikes.rate)
    concentration = 1.0 / spikes.correlation - 1.0
    return stats.betabinom.pmf(counts, sizes, spikes.rate * concentration,
                               (1.0 - spikes.rate) * concentration)


def _likely_counts(pmf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The counts whose probability is above ``_NEGLIGIBLE`` of the largest, and their pmf."""
    keep = np.flatnonzero(pmf > _NEGLIGIBLE * pmf.max())
    return keep, pmf[keep]


def _count_threshold(ratio: float, inclusive: bool) -> int:
    """The least count ``n`` with ``n >= ratio`` (inclusive) or ``n > ratio``."""
    nearest = round(ratio)
    if abs(ratio - nearest) <= _INTEGER_TOLERANCE * max(1.0, ratio):
        return int(nearest) if inclusive else int(nearest) + 1
    return math.ceil(ratio)


def _tail_rates(product: Product, method: str, counts: int | np.ndarray) -> np.ndarray:
    r""":math:`P(X \ge n)` for each ``n`` of ``counts`` (each >= 1), by ``method``."""
    counts = np.asarray(counts)
    if method == "gaussian":
        moments = attention_moments(product)
        return np.vectorize(gaussian_sum_rate)(counts - 0.5, moments.std, moments.mean)
    pmf = attention_count_distribution(product)
    tails = np.append(np.cumsum(pmf[::-1])[::-1], 0.0)
    return tails[np.minimum(counts, len(pmf))]


def _count_for_rate(product: Product, rate: float, method: str) -> tuple[int, float]:
    """The count threshold whose rate is nearest to ``rate`` in log ratio, and that rate."""
    rate = check_open_unit_interval("rate", rate)
    _check_method(method)
    tokens, head_dim = _sizes(product)
    counts = np.arange(1, tokens * head_dim + 1)
    rates = _tail_rates(product, method, counts)
    reachable = rates > 0
    if not reachable.any():
        raise InvalidArgumentError(
            f"product: its count is 0 with probability 1 to double precision, so no scale or "
            f"threshold reaches rate {rate!r}; raise the rates of Q, K, V")
    distance = np.where(reachable, np.abs(np.log(np.where(reachable, rates, 1.0) / rate)),
                        np.inf)
    best = int(np.argmin(distance))
    return int(counts[best]), float(rates[best])
