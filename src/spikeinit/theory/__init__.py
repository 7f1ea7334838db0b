"""Closed forms and mean-field theory of activity propagation in deep spiking networks.

Pure functions over numbers and small immutable objects: nothing here is an ``nn.Module``.
"""

from spikeinit.neurons.surrogate import SURROGATES, surrogate_derivative
from spikeinit.theory.copy_chain import (
    CopyWindow,
    copy_path_gain,
    copy_window,
    isometric_copy_slope,
)
from spikeinit.theory.correlation import (
    CorrelationFixedPoint,
    CorrelationMeanField,
    WeightStructure,
    correlation_fixed_point,
    correlation_map,
    correlation_mean_field,
    pattern_correlation,
)
from spikeinit.theory.gaussian import (
    inverse_mills_ratio,
    normal_density,
    tail_probability,
    truncated_mean_above,
)
from spikeinit.theory.residual import (
    branch_std_for_rate,
    gaussian_sum_rate,
    mixture_rate,
    spike_stream_moments,
    stream_fraction,
    stream_variances,
    sum_moments,
)
from spikeinit.theory.static import (
    OPERATING_SLOPE,
    FixedPoint,
    StaticMeanField,
    critical_ratio,
    fixed_point,
    operating_sigma,
    ratio_for_slope,
    spike_std,
    spike_weight_variance,
    stability_slope,
    stable_sigma,
    static_mean_field,
    variance_map,
)
from spikeinit.theory.surrogate import surrogate_second_moment

__all__ = [
    "CopyWindow",
    "CorrelationFixedPoint",
    "CorrelationMeanField",
    "WeightStructure",
    "copy_path_gain",
    "copy_window",
    "correlation_fixed_point",
    "correlation_map",
    "correlation_mean_field",
    "isometric_copy_slope",
    "pattern_correlation",
    "OPERATING_SLOPE",
    "SURROGATES",
    "FixedPoint",
    "StaticMeanField",
    "branch_std_for_rate",
    "critical_ratio",
    "fixed_point",
    "gaussian_sum_rate",
    "inverse_mills_ratio",
    "mixture_rate",
    "normal_density",
    "operating_sigma",
    "ratio_for_slope",
    "spike_std",
    "spike_stream_moments",
    "spike_weight_variance",
    "stability_slope",
    "stable_sigma",
    "static_mean_field",
    "stream_fraction",
    "stream_variances",
    "sum_moments",
    "surrogate_derivative",
    "surrogate_second_moment",
    "tail_probability",
    "truncated_mean_above",
    "variance_map",
]
