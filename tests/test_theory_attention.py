"""The attention theory (spikeinit.theory.attention) against Monte Carlo of the spike matrices.

The simulation draws whole matrices Q, K, V (N x d, per sample) and multiplies them, so it
checks the theory's reduction to the counts L, M as well as its covariances. Every entry of
a sample's output is used. Entries of one sample are dependent, so the Monte Carlo error is
estimated from the spread of the per-sample statistics over the independent samples (the delta
method for the variance). The sample count is chosen so that this error is at most 2.5 % of
the variance (asserted), and the 10 % acceptance band is then at least 4 standard errors
wide. Rates are also held to 4 standard errors of the simulated fraction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
import pytest

from spikeinit.errors import InvalidArgumentError
from spikeinit.theory import (
    AttentionProduct,
    SpikeDrivenProduct,
    SpikeMatrix,
    attention_count_distribution,
    attention_moments,
    attention_rate,
    attention_scale_for_rate,
    attention_threshold_for_rate,
    masked_output_moments,
)

#: Spikformer's attention neuron: threshold 0.5, scale 0.125, so it fires on X >= 4.
SPIKFORMER_THRESHOLD, SPIKFORMER_SCALE = 0.5, 0.125
MAX_RELATIVE_ERROR = 0.025  # of the Monte Carlo variance, one standard error
ACCEPTANCE = 0.10
SIGMAS = 4.0
#: Entries drawn per grid point at most, and the nonzero products wanted (sample count rule).
MAX_ENTRIES, WANTED_NONZERO, MIN_SAMPLES, MIN_OUTPUTS = 12_000_000, 15_000, 2000, 1_000_000
#: A correlated matrix varies from sample to sample as a whole: more samples.
MIN_CORRELATED_SAMPLES = 90_000
SDSA_CHANNELS = 32
TARGET = 0.1

RATES = (0.02, 0.1, 0.3)
TOKENS = (4, 16, 64)
HEAD_DIMS = (8, 32)
MIXED = ((0.3, 0.02, 0.1), (0.02, 0.1, 0.3), (0.1, 0.3, 0.02))


def self_attention(tokens: int, head_dim: int, rates: tuple[float, float, float],
                   correlation: float = 0.0) -> AttentionProduct:
    q, k, v = (SpikeMatrix(rate, correlation) for rate in rates)
    return AttentionProduct(tokens, head_dim, q, k, v)


GRID = [self_attention(n, d, (r, r, r)) for r in RATES for n in TOKENS for d in HEAD_DIMS]
GRID += [self_attention(n, 32, rates) for rates in MIXED for n in (4, 64)]
CORRELATED = [self_attention(16, 8, (0.1, 0.1, 0.1), 0.1),
              self_attention(8, 16, (0.1, 0.3, 0.2), 0.05),
              self_attention(4, 32, (0.3, 0.3, 0.3), 0.2)]
SPIKE_DRIVEN = [SpikeDrivenProduct(n, SpikeMatrix(r), SpikeMatrix(r)) for r in RATES
                for n in TOKENS]


# ---- the simulation -----------------------------------------------------------------------------

def draw(rng: np.random.Generator, shape: tuple[int, ...], spikes: SpikeMatrix) -> np.ndarray:
    """Spikes of ``shape`` (samples first); a Beta rate per sample when correlated."""
    rate: float | np.ndarray = spikes.rate
    if spikes.correlation > 0:
        concentration = 1.0 / spikes.correlation - 1.0
        rate = rng.beta(spikes.rate * concentration, (1 - spikes.rate) * concentration,
                        size=shape[0]).reshape(-1, *[1] * (len(shape) - 1))
    return (rng.random(shape, dtype=np.float32) < rate).astype(np.float32)


@dataclass(frozen=True)
class Simulated:
    """Per-sample means over the entries: of X, of X^2, and of X >= n for each watched n."""

    first: np.ndarray
    second: np.ndarray
    tails: dict[int, np.ndarray]

    def mean(self) -> tuple[float, float]:
        return float(self.first.mean()), float(self.first.std() / math.sqrt(len(self.first)))

    def variance(self) -> tuple[float, float]:
        """The pooled variance and its standard error (delta method over the samples)."""
        mean = self.first.mean()
        estimate = self.second.mean() - mean**2
        covariance = np.cov(np.stack([self.second, self.first])) / len(self.first)
        gradient = np.array([1.0, -2.0 * mean])
        return float(estimate), float(math.sqrt(gradient @ covariance @ gradient))

    def rate(self, count: int) -> tuple[float, float]:
        fractions = self.tails[count]
        return float(fractions.mean()), float(fractions.std() / math.sqrt(len(fractions)))


def watched_counts(product: AttentionProduct | SpikeDrivenProduct) -> tuple[int, ...]:
    """Spikformer's count, and the count of the inverse for ``TARGET`` and its neighbours."""
    chosen = attention_scale_for_rate(product, TARGET, SPIKFORMER_THRESHOLD).count
    return tuple(sorted({4, chosen, chosen + 1, max(chosen - 1, 1)}))


def sample_count(product: AttentionProduct | SpikeDrivenProduct, outputs: int,
                 drawn: int) -> int:
    """Samples for ``WANTED_NONZERO`` nonzero counts among the ``outputs`` entries of each, at
    least ``MIN_SAMPLES`` (``MIN_CORRELATED_SAMPLES``) and ``MIN_OUTPUTS`` entries, and at most
    ``MAX_ENTRIES`` entries of Q, K, V drawn (``drawn`` per matrix and sample)."""
    nonzero = 1.0 - attention_count_distribution(product)[0]
    wanted = math.ceil(WANTED_NONZERO / (outputs * nonzero))
    least = max(MIN_CORRELATED_SAMPLES if product.key.correlation > 0 else MIN_SAMPLES,
                math.ceil(MIN_OUTPUTS / outputs))
    return int(min(max(wanted, least), MAX_ENTRIES // drawn))


def seed_of(product: AttentionProduct | SpikeDrivenProduct) -> list[int]:
    return [abs(hash(product)) % 2**32]


@cache
def simulate(product: AttentionProduct | SpikeDrivenProduct) -> Simulated:
    """Monte Carlo of the product count of every output entry (one head, or SDSA channels)."""
    rng = np.random.default_rng(seed_of(product))
    spike_driven = isinstance(product, SpikeDrivenProduct)
    width = SDSA_CHANNELS if spike_driven else product.head_dim
    outputs = width if spike_driven else product.tokens * width
    samples = sample_count(product, outputs, product.tokens * width)
    shape_chunk = max(1, 2_000_000 // (product.tokens * width))
    counts = watched_counts(product)
    first, second, tails = [], [], {n: [] for n in counts}
    for start in range(0, samples, shape_chunk):
        shape = (min(shape_chunk, samples - start), product.tokens, width)
        key, value = draw(rng, shape, product.key), draw(rng, shape, product.value)
        if spike_driven:
            x = (key * value).sum(axis=1)
        else:
            x = product_count(draw(rng, shape, product.query), key, value)
        axes = tuple(range(1, x.ndim))
        first.append(x.mean(axis=axes, dtype=np.float64))
        second.append((x.astype(np.float64) ** 2).mean(axis=axes))
        for n in counts:
            tails[n].append((x >= n).mean(axis=axes))
    return Simulated(np.concatenate(first), np.concatenate(second),
                     {n: np.concatenate(parts) for n, parts in tails.items()})


def product_count(query: np.ndarray, key: np.ndarray, value: np.ndarray) -> np.ndarray:
    """``Q K^T V`` per sample, in the cheaper order (the entries do not depend on it)."""
    if query.shape[1] <= query.shape[2]:
        return (query @ key.transpose(0, 2, 1)) @ value
    return query @ (key.transpose(0, 2, 1) @ value)


def assert_within(theory: float, simulated: float, error: float, band: float = 0.0) -> None:
    """``theory`` within ``SIGMAS`` standard errors of the simulation, and within ``band``
    (relative) when one is given."""
    assert abs(theory - simulated) <= SIGMAS * error, (theory, simulated, error)
    if band:
        assert abs(theory / simulated - 1.0) <= band, (theory, simulated)


# ---- moments ----------------------------------------------------------------------------------

@pytest.mark.parametrize("product", GRID + CORRELATED + SPIKE_DRIVEN, ids=repr)
def test_moments_match_monte_carlo(product: AttentionProduct | SpikeDrivenProduct) -> None:
    simulated = simulate(product)
    theory = attention_moments(product)
    variance, variance_error = simulated.variance()
    assert variance_error <= MAX_RELATIVE_ERROR * variance  # the Monte Carlo is fine enough
    assert_within(theory.variance, variance, variance_error, ACCEPTANCE)
    mean, mean_error = simulated.mean()
    assert_within(theory.mean, mean, mean_error, ACCEPTANCE)


def test_covariances_of_shared_factors_dominate_the_variance() -> None:
    head = self_attention(64, 32, (0.3, 0.3, 0.3))
    p = 0.3**3
    independent_terms = 64 * 32 * p * (1 - p)
    assert attention_moments(head).variance > 5 * independent_terms
    assert simulate(head).variance()[0] > 5 * independent_terms


@pytest.mark.parametrize("product", GRID[::5] + CORRELATED + SPIKE_DRIVEN[::2], ids=repr)
def test_exact_distribution_has_the_closed_form_moments(
        product: AttentionProduct | SpikeDrivenProduct) -> None:
    pmf = attention_count_distribution(product)
    counts = np.arange(len(pmf))
    mean = float(pmf @ counts)
    theory = attention_moments(product, scale=2.0)
    assert 2.0 * mean == pytest.approx(theory.mean, rel=1e-9)
    assert 4.0 * float(pmf @ (counts - mean) ** 2) == pytest.approx(theory.variance, rel=1e-8)


def test_integral_floats_are_taken_as_sizes() -> None:
    head = AttentionProduct(16.0, 8.0, SpikeMatrix(0.1), SpikeMatrix(0.1), SpikeMatrix(0.1))
    assert (head.tokens, head.head_dim) == (16, 8)
    assert attention_rate(head, 1.5) == attention_rate(GRID[8], 1.5)


def test_scale_multiplies_the_current() -> None:
    head = GRID[7]
    one, scaled = attention_moments(head), attention_moments(head, scale=0.125)
    assert scaled.mean == pytest.approx(0.125 * one.mean)
    assert scaled.std == pytest.approx(0.125 * one.std)


def test_every_order_of_the_product_gives_the_same_entries() -> None:
    rng = np.random.default_rng(1)
    q, k, v = (rng.random((2, 16, 8)) < 0.3 for _ in range(3))
    q, k, v = q.astype(float), k.astype(float), v.astype(float)
    reference = (q @ k.transpose(0, 2, 1)) @ v
    assert np.array_equal(q @ (k.transpose(0, 2, 1) @ v), reference)
    channel_first = (v.transpose(0, 2, 1) @ k) @ q.transpose(0, 2, 1)  # SpikingJelly's (V K^T) Q
    assert np.array_equal(channel_first.transpose(0, 2, 1), reference)


# ---- the attention neuron's rate and the inverse -------------------------------------------

RATE_CHECKED = [p for p in GRID + CORRELATED + SPIKE_DRIVEN
                if attention_rate(p, SPIKFORMER_THRESHOLD, SPIKFORMER_SCALE) > 1e-3]


@pytest.mark.parametrize("product", RATE_CHECKED, ids=repr)
def test_exact_rate_matches_monte_carlo(product: AttentionProduct | SpikeDrivenProduct) -> None:
    fired, error = simulate(product).rate(4)
    assert_within(attention_rate(product, SPIKFORMER_THRESHOLD, SPIKFORMER_SCALE), fired, error)


@pytest.mark.parametrize("product", GRID + CORRELATED, ids=repr)
def test_scale_for_rate_puts_the_simulated_neuron_at_the_predicted_rate(
        product: AttentionProduct) -> None:
    point = attention_scale_for_rate(product, TARGET, SPIKFORMER_THRESHOLD)
    assert point.scale * (point.count - 0.5) == pytest.approx(SPIKFORMER_THRESHOLD)
    # the half count keeps s X off the threshold: both comparisons fire on X >= count
    for inclusive in (True, False):
        assert attention_rate(product, SPIKFORMER_THRESHOLD, point.scale,
                              inclusive=inclusive) == point.rate
    fired, error = simulate(product).rate(point.count)
    assert_within(point.rate, fired, error)
    neighbours = [c for c in (point.count - 1, point.count + 1) if c >= 1]
    for count in neighbours:  # no other count comes nearer to the target
        other = attention_rate(product, count - 0.5)
        assert other == 0 or abs(math.log(other / TARGET)) >= abs(math.log(point.rate / TARGET))


def test_scale_for_rate_reaches_the_target_where_the_lattice_is_fine() -> None:
    for product in GRID:
        if attention_moments(product).std >= 3.0:  # steps of at most a third of a std
            point = attention_scale_for_rate(product, TARGET, SPIKFORMER_THRESHOLD)
            assert abs(point.rate / TARGET - 1.0) <= 0.25, product


def test_scale_for_rate_says_when_the_target_is_out_of_reach() -> None:
    sparse = self_attention(4, 8, (0.02, 0.02, 0.02))
    point = attention_scale_for_rate(sparse, TARGET, SPIKFORMER_THRESHOLD)
    assert point.count == 1
    assert point.rate == pytest.approx(1.0 - attention_count_distribution(sparse)[0])
    assert point.rate < 0.01 * TARGET


@pytest.mark.parametrize("product", SPIKE_DRIVEN, ids=repr)
def test_threshold_for_rate_of_the_spike_driven_gate(product: SpikeDrivenProduct) -> None:
    point = attention_threshold_for_rate(product, TARGET)
    assert point.threshold == point.count - 0.5
    assert attention_rate(product, point.threshold) == point.rate
    fired, error = simulate(product).rate(point.count)
    assert_within(point.rate, fired, error)


def test_inclusive_and_strict_comparisons_differ_on_the_lattice() -> None:
    head = self_attention(64, 32, (0.1, 0.1, 0.1))
    inclusive = attention_rate(head, SPIKFORMER_THRESHOLD, SPIKFORMER_SCALE)  # X >= 4
    strict = attention_rate(head, SPIKFORMER_THRESHOLD, SPIKFORMER_SCALE, inclusive=False)
    assert strict == pytest.approx(attention_rate(head, 4.5))  # X >= 5
    assert inclusive - strict == pytest.approx(attention_count_distribution(head)[4])


def test_gaussian_agrees_in_the_bulk_and_fails_with_few_counts() -> None:
    dense = self_attention(64, 32, (0.3, 0.3, 0.3))
    for threshold in (45.5, 55.5, 70.5):
        exact = attention_rate(dense, threshold)
        assert attention_rate(dense, threshold, method="gaussian") == pytest.approx(exact,
                                                                                    rel=0.1)
    sparse = self_attention(16, 32, (0.1, 0.1, 0.1))  # E[X] = 0.5
    exact = attention_rate(sparse, SPIKFORMER_THRESHOLD, SPIKFORMER_SCALE)
    gaussian = attention_rate(sparse, SPIKFORMER_THRESHOLD, SPIKFORMER_SCALE, method="gaussian")
    assert gaussian < 0.1 * exact  # the tail of the lattice variable is much heavier


# ---- the spike-driven attention's output ---------------------------------------------------

def test_masked_output_matches_monte_carlo() -> None:
    rng = np.random.default_rng(2)
    query, kv = SpikeMatrix(0.2), SpikeDrivenProduct(16, SpikeMatrix(0.3), SpikeMatrix(0.3))
    point = attention_threshold_for_rate(kv, 0.3)
    shape = (6000, 16, SDSA_CHANNELS)
    gate = (draw(rng, shape, kv.key) * draw(rng, shape, kv.value)).sum(axis=1) >= point.count
    output = draw(rng, shape, query) * gate[:, None, :]
    theory = masked_output_moments(query, point.rate)
    per_sample = output.mean(axis=(1, 2))
    assert_within(theory.mean, float(per_sample.mean()),
                  float(per_sample.std() / math.sqrt(shape[0])))
    assert theory.variance == pytest.approx(theory.mean * (1 - theory.mean))


# ---- arguments ----------------------------------------------------------------------------------

@pytest.mark.parametrize("build", [
    lambda: SpikeMatrix(0.0),
    lambda: SpikeMatrix(0.1, 1.0),
    lambda: SpikeMatrix(0.1, -0.1),
    lambda: AttentionProduct(0, 8, SpikeMatrix(0.1), SpikeMatrix(0.1), SpikeMatrix(0.1)),
    lambda: SpikeDrivenProduct(4, SpikeMatrix(0.1), SpikeMatrix(1.5)),
    lambda: attention_rate(GRID[0], -0.5),
    lambda: attention_rate(GRID[0], 0.5, scale=0.0),
    lambda: attention_rate(GRID[0], 0.5, method="poisson"),
    lambda: attention_scale_for_rate(GRID[0], 1.0, 0.5),
    lambda: attention_moments("QKV"),
    lambda: AttentionProduct(4, 8, 0.1, SpikeMatrix(0.1), SpikeMatrix(0.1)),
])
def test_bad_arguments_raise_invalid_argument_error(build) -> None:
    with pytest.raises(InvalidArgumentError):
        build()
