import numpy as np
import pytest
import torch

from spikeinit.experiments.propagation import PropagationConfig, run_propagation
from spikeinit.init import LayerContext, get_method
from spikeinit.neurons import LIFParameters, lif_multistep
from spikeinit.theory.gradients import backward_factors, current_gradients, gradient_mean_field


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("order", ["delayed", "immediate"])
def test_backward_recursion_equals_autograd(reset, order):
    params = LIFParameters(beta=0.7, threshold=0.8, reset=reset, reset_order=order,
                           surrogate="atan")
    currents = (torch.randn(6, 50, dtype=torch.float64) * 1.5).requires_grad_(True)
    membranes = torch.empty_like(currents)
    spikes, _ = lif_multistep(currents, params, membranes_out=membranes)
    errors = torch.randn_like(spikes)
    (spikes * errors).sum().backward()
    ours = current_gradients(errors, backward_factors(membranes, spikes.detach(), params))
    assert torch.allclose(ours, currents.grad, atol=1e-12)


def test_gradient_mean_field_matches_a_real_backward_pass():
    config = PropagationConfig(inits=("paper",), depth=15, width=1000, steps=1, seed=0)
    grads = run_propagation(config, gradients=True, surrogate="atan")["results"]["paper"][
        "gradients"]
    measured = np.array(grads["current_gradient_square"])
    predicted = np.array(grads["predicted_current_gradient_square"])
    assert np.all(np.abs(predicted / measured - 1) < 0.25)
    weights = np.array(grads["weight_gradient_norm"])
    assert np.all(np.abs(np.array(grads["predicted_weight_gradient_norm"]) / weights - 1) < 0.25)


def test_fast_sigmoid_gradients_vanish_faster_than_atan():
    fast = gradient_mean_field(10, 6.3, LIFParameters(surrogate="fast-sigmoid"), steps=3)
    atan = gradient_mean_field(10, 6.3, LIFParameters(surrogate="atan"), steps=3)
    assert fast.per_layer[0] / fast.per_layer[-1] < atan.per_layer[0] / atan.per_layer[-1]


def test_balance_moves_the_gain_towards_the_backward_condition():
    method, _ = get_method("temporal")
    neuron = LIFParameters(threshold=1.0, beta=0.5, surrogate="fast-sigmoid")
    ctx = LayerContext(fan_in=1000, fan_out=1000, neuron=neuron, steps=5, depth=20)
    forward = method.statistics(ctx)[1]
    half = method.statistics(ctx, balance=0.5)[1]
    full = method.statistics(ctx, balance=1.0)[1]
    assert forward < half < full
    assert half == pytest.approx((forward * full) ** 0.5, rel=1e-6)
    with pytest.raises(ValueError, match="balance"):
        method.statistics(ctx, balance=1.5)
