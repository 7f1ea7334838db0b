import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from scipy import stats

from spikeinit import theory


def test_tail_probability_matches_scipy_normal_survival():
    xs = np.linspace(-4, 6, 41)
    assert np.allclose(theory.tail_probability(xs), stats.norm.sf(xs), rtol=1e-12, atol=0)


def test_spike_std_at_zero_threshold_is_kaiming():
    assert theory.spike_std(1000, 0.0) == pytest.approx(math.sqrt(2 / 1000), rel=1e-12)


@given(
    fan_in=st.integers(1, 10_000),
    threshold=st.floats(0.0, 3.0),
    sigma=st.floats(0.1, 5.0),
)
@example(fan_in=1, threshold=2.0, sigma=0.125)  # beyond float32: found in a fresh environment
def test_spike_std_formula(fan_in, threshold, sigma):
    """The formula, or, where its variance exceeds float32 (theta/sigma beyond about 15), the
    one-line error naming the threshold."""
    variance = sigma**2 / (fan_in * stats.norm.sf(threshold / sigma))
    if variance > np.finfo(np.float32).max:
        with pytest.raises(ValueError, match="threshold"):
            theory.spike_std(fan_in, threshold, sigma)
        return
    assert theory.spike_std(fan_in, threshold, sigma) == pytest.approx(math.sqrt(variance),
                                                                      rel=1e-9)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"fan_in": 0, "threshold": 1.0}, "fan_in"),
        ({"fan_in": 10, "threshold": -0.1}, "threshold"),
        ({"fan_in": 10, "threshold": float("nan")}, "threshold"),
        ({"fan_in": 10, "threshold": float("inf")}, "threshold"),
        ({"fan_in": 10, "threshold": 1.0, "sigma": 0.0}, "sigma"),
    ],
)
def test_spike_std_rejects_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        theory.spike_std(**kwargs)


def test_paper_gain_makes_sigma_a_fixed_point_with_the_documented_slope():
    gain = 1 / theory.tail_probability(1.0)
    point = theory.fixed_point(gain, 1.0)
    assert point.variance == pytest.approx(1.0, rel=1e-9)
    phi = stats.norm.pdf(1.0)
    assert point.slope == pytest.approx(phi / (2 * stats.norm.sf(1.0)), rel=1e-9)
    assert point.stable


def test_fixed_point_vanishes_for_kaiming_at_threshold_one():
    assert theory.fixed_point(2.0, 1.0) is None


def test_critical_ratio_is_where_slope_is_one():
    a = theory.critical_ratio()
    assert 1.1 < a < 1.3
    assert theory.stability_slope(a) == pytest.approx(1.0, rel=1e-9)
    assert theory.stability_slope(a * 1.05) > 1.0


@pytest.mark.parametrize("threshold", [0.0, 0.5, 1.0, 1.5, 2.5])
def test_stable_sigma_gives_a_stable_fixed_point(threshold):
    sigma = theory.stable_sigma(threshold, max_slope=0.9)
    assert sigma >= 1.0
    assert theory.stability_slope(threshold, sigma) <= 0.9 + 1e-9
    if theory.stability_slope(threshold, 1.0) <= 0.9:
        assert sigma == 1.0


def test_static_mean_field_iterates_the_variance_map():
    gain = 5.0
    mf = theory.static_mean_field(5, gain / 100, 100, 1.0)
    variance = 1.0
    for layer in range(5):
        assert mf.variance[layer] == pytest.approx(variance, rel=1e-12)
        assert mf.rate[layer] == pytest.approx(stats.norm.sf(1.0 / math.sqrt(variance)))
        variance = theory.variance_map(variance, gain, 1.0)


def test_static_mean_field_with_weight_mean():
    mf = theory.static_mean_field(2, 0.0, 10, 0.5, weight_mean=0.1)
    p = mf.rate[0]
    assert mf.mean[1] == pytest.approx(10 * 0.1 * p)
    assert mf.variance[1] == pytest.approx(10 * 0.01 * p * (1 - p))


def test_static_mean_field_rejects_wrong_number_of_layer_variances():
    with pytest.raises(ValueError, match="weight_variance"):
        theory.static_mean_field(4, [1.0, 1.0], 10, 1.0)


def test_surrogate_second_moment_matches_monte_carlo():
    rng = np.random.default_rng(0)
    u = rng.normal(0, 1.3, 2_000_000)
    for name in theory.SURROGATES:
        mc = np.mean(theory.surrogate_derivative(name, u - 0.7) ** 2)
        assert theory.surrogate_second_moment(name, 0.7, 1.3) == pytest.approx(mc, rel=0.02)


def test_large_thresholds_give_a_finite_variance_or_a_clear_error():
    """Q(theta) underflows near theta = 38; the variance is computed in log space."""
    import torch

    import spikeinit
    from spikeinit.theory import spike_weight_variance

    assert math.isfinite(spike_weight_variance(100, 10.0))
    for threshold in (20.0, 40.0, 1e6):
        with pytest.raises(ValueError, match=r"threshold: theta/sigma = .* exceeds float32"):
            spike_weight_variance(100, threshold)
        with pytest.raises(ValueError, match="threshold"):
            spikeinit.spike_normal_(torch.empty(10, 100), threshold=threshold)
    assert math.isfinite(spike_weight_variance(100, 40.0, sigma=20.0))  # a larger sigma works
