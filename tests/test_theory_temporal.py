import numpy as np
import pytest

import spikeinit
from spikeinit.experiments.propagation import PropagationConfig, run_propagation
from spikeinit.neurons import LIFParameters
from spikeinit.theory import spike_weight_variance, static_mean_field
from spikeinit.theory.temporal import InputCurrentProcess, temporal_mean_field
from spikeinit.theory.temporal_gain import solve_temporal_gain

PARAMS = LIFParameters(beta=0.5, threshold=1.0)


def test_one_step_agrees_with_the_static_theory():
    gain = 1000 * spike_weight_variance(1000, 1.0)
    temporal = temporal_mean_field(20, gain, PARAMS, steps=1, samples=65536)
    static = static_mean_field(20, gain / 1000, 1000, 1.0)
    assert np.allclose(temporal.time_averaged_rate, static.rate, rtol=0.05)
    assert np.allclose(temporal.time_averaged_variance, static.variance, rtol=0.05)


def test_mean_field_is_deterministic_and_seeded():
    a = temporal_mean_field(5, 6.0, PARAMS, steps=10, seed=3)
    b = temporal_mean_field(5, 6.0, PARAMS, steps=10, seed=3)
    c = temporal_mean_field(5, 6.0, PARAMS, steps=10, seed=4)
    assert np.array_equal(a.rate, b.rate)
    assert not np.array_equal(a.rate, c.rate)


def test_constant_input_layer_one_is_periodic_per_neuron():
    mf = temporal_mean_field(1, 1.0, LIFParameters(beta=0.0, threshold=1.0, reset="none"),
                             steps=6, inputs=InputCurrentProcess(kind="constant"))
    # With beta = 0 and no reset, u[t] = I: the same neurons fire at every step.
    assert np.allclose(mf.autocorrelation[0], mf.rate[0][0])


def test_solver_is_deterministic_and_hits_its_target():
    params = LIFParameters(beta=0.9, threshold=1.0, reset="zero")
    first = solve_temporal_gain.__wrapped__(params, 20)
    second = solve_temporal_gain.__wrapped__(params, 20)
    assert first == second
    assert abs(first.fixed_point_rate / first.target_rate - 1) < 0.03


def test_temporal_rate_reaches_a_chosen_rate():
    solution = solve_temporal_gain(PARAMS, 20, target_rate=0.1)
    assert solution.target_rate == 0.1
    assert abs(solution.fixed_point_rate / 0.1 - 1) < 0.03


def test_unreachable_target_is_explained():
    # One step, theta = 1.5: the static slope at Q(1.5) exceeds 1, so the rate of the first
    # layer is an unstable fixed point and the settled rate jumps over it.
    with pytest.raises(ValueError, match="not a stable fixed point.*Nearest feasible"):
        solve_temporal_gain(LIFParameters(beta=0.5, threshold=1.5), 1)
    with pytest.raises(ValueError, match="target_rate"):
        solve_temporal_gain(PARAMS, 20, target_rate=1.5)


@pytest.mark.parametrize("beta, reset", [(0.5, "subtract"), (0.9, "zero")])
def test_temporal_init_conserves_the_rate_over_depth_and_time(beta, reset):
    config = PropagationConfig(inits=("temporal", "paper"), depth=30, width=500, steps=20,
                               threshold=1.0, beta=beta, reset=reset, batch=32)
    results = run_propagation(config)["results"]
    rate = results["temporal"]["rate"]
    assert abs(rate[-1] / rate[0] - 1) < 0.10
    assert results["paper"]["rate"][-1] < rate[-1]


@pytest.mark.slow
@pytest.mark.ci
@pytest.mark.parametrize("beta", [0.5, 0.9])
def test_full_size_temporal_mean_field_tracks_the_simulation(beta):
    # Issue 3's acceptance setting: 100 layers, width 1000, T = 20, theta = 1.
    config = PropagationConfig(inits=("temporal",), depth=100, width=1000, steps=20,
                               threshold=1.0, beta=beta)
    data = run_propagation(config)["results"]["temporal"]
    rate = np.array(data["rate"])
    assert abs(rate[-1] / rate[0] - 1) < 0.10
    assert np.all(np.abs(np.array(data["prediction"]["rate"]) / rate - 1) < 0.15)


def test_temporal_methods_work_through_initialize():
    from spikeinit.models import deep_network

    net = deep_network(50, 3, beta=0.5, threshold=1.0)
    records = spikeinit.initialize(net, "temporal-rate=0.1", steps=20)
    # depth 3: the rate is matched at the last layer (2 maps), for layers 50 wide.
    expected = solve_temporal_gain(PARAMS, 20, target_rate=0.1, settle_layers=2, width=50).gain / 50
    assert records[0].std == pytest.approx(expected**0.5)
