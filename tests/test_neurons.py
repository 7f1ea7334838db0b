import importlib.util

import pytest
import torch

from spikeinit.neurons import LIF, LIFParameters, lif_multistep
from spikeinit.neurons.surrogate import surrogate_derivative

CURRENT = [1.5, 0.2, 0.9, 0.0, 2.5]


def hand_computed(reset: str, order: str, beta: float = 0.5, theta: float = 1.0):
    """Membrane and spikes of one neuron, computed step by step from the equations."""
    u, s, us, ss = 0.0, 0.0, [], []
    for current in CURRENT:
        if reset == "none":
            u = beta * u + current
        elif order == "delayed" and reset == "subtract":
            u = beta * u + current - theta * s
        elif reset == "subtract" and order == "immediate":
            u = beta * (u - theta * s) + current
        else:  # zero, either order (as snnTorch 1.0)
            u = beta * u * (1 - s) + current
        s = 1.0 if u > theta else 0.0
        us.append(u)
        ss.append(s)
    return us, ss


def test_hand_computed_delayed_subtract_literal_values():
    # u0=1.5 s; u1=.75+.2-1=-.05; u2=-.025+.9=.875; u3=.4375; u4=.21875+2.5=2.71875 s
    us, ss = hand_computed("subtract", "delayed")
    assert us == pytest.approx([1.5, -0.05, 0.875, 0.4375, 2.71875])
    assert ss == [1, 0, 0, 0, 1]


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("order", ["delayed", "immediate"])
def test_lif_reproduces_hand_computed_sequences(reset, order):
    expected_u, expected_s = hand_computed(reset, order)
    currents = torch.tensor(CURRENT, dtype=torch.float64).view(5, 1, 1)
    membranes = torch.empty_like(currents)
    params = LIFParameters(beta=0.5, threshold=1.0, reset=reset, reset_order=order)
    spikes, _ = lif_multistep(currents, params, membranes_out=membranes)
    assert membranes.flatten().tolist() == pytest.approx(expected_u, abs=1e-12)
    assert spikes.flatten().tolist() == expected_s


def test_reset_orders_differ_where_documented():
    delayed = hand_computed("subtract", "delayed")[0]
    immediate = hand_computed("subtract", "immediate")[0]
    assert delayed[1] != pytest.approx(immediate[1])


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_single_step_equals_multi_step(reset):
    x = torch.randn(7, 4, 6)
    multi = LIF(reset=reset)(x)
    single = LIF(reset=reset, step_mode="single")
    stepped = torch.stack([single(x[t]) for t in range(7)])
    assert torch.equal(multi, stepped)


def test_stateful_state_persists_until_reset():
    lif = LIF(stateful=True)
    x = torch.randn(6, 3, 5)
    whole = lif(x)
    lif.reset_state()
    halves = torch.cat([lif(x[:3]), lif(x[3:])])
    assert torch.equal(whole, halves)
    lif.reset_state()
    assert torch.equal(lif(x[3:]), LIF()(x[3:]))


def test_multi_step_call_starts_at_rest_by_default():
    lif = LIF()
    x = torch.randn(6, 3, 5)
    first = lif(x)
    assert torch.equal(lif(x), first)  # the second call does not continue the first
    assert not torch.equal(torch.cat([lif(x[:3]), lif(x[3:])]), first)


def test_training_loop_without_reset_backpropagates_every_batch():
    torch.manual_seed(0)
    fc, lif = torch.nn.Linear(5, 4), LIF(surrogate="atan")
    optimizer = torch.optim.SGD(fc.parameters(), lr=0.1)
    for _ in range(3):  # a user who never calls reset(): must not hit "backward twice"
        loss = lif(fc(torch.rand(4, 2, 5))).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert fc.weight.grad is not None and torch.isfinite(fc.weight.grad).all()


def test_step_mode_aliases_and_top_level_reset():
    assert LIF(step_mode="s").step_mode == "single"
    assert LIF(step_mode="m").step_mode == "multi"
    with pytest.raises(ValueError, match="step_mode"):
        LIF(step_mode="x")
    single = LIF(step_mode="s")
    net = torch.nn.Sequential(torch.nn.Identity(), single)
    first = net(torch.full((2, 3), 0.7))
    assert torch.equal(first, torch.zeros(2, 3))
    assert torch.equal(net(torch.full((2, 3), 0.7)), torch.ones(2, 3))  # 0.35 + 0.7 > 1
    import spikeinit

    spikeinit.reset(net)
    assert single.state is None
    assert torch.equal(net(torch.full((2, 3), 0.7)), torch.zeros(2, 3))


def test_old_reset_names_are_deprecated_aliases():
    import spikeinit

    lif = LIF(stateful=True)
    lif(torch.ones(2, 1, 3))
    with pytest.warns(DeprecationWarning, match="reset_state"):
        lif.reset()
    assert lif.state is None
    with pytest.warns(DeprecationWarning, match="spikeinit.reset"):
        assert spikeinit.reset_states is spikeinit.reset
    assert "reset_states" not in spikeinit.__all__
    with pytest.raises(AttributeError):
        spikeinit.no_such_name  # noqa: B018


@pytest.mark.parametrize("engine", ["fused", "reference"])
@pytest.mark.parametrize("surrogate", ["fast-sigmoid", "atan"])
def test_input_gradient_is_the_closed_form_surrogate(surrogate, engine):
    """Two steps, delayed subtractive reset, reset detached: u0 = x0, u1 = beta u0 + x1 -
    theta s0, so d(s0 + s1)/dx0 = h'(u0 - theta) + beta h'(u1 - theta), d/dx1 = h'(u1 - theta)."""
    beta, theta = 0.5, 1.0
    x = torch.randn(2, 3, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x = (x + 1.0).requires_grad_()
    LIF(beta=beta, threshold=theta, surrogate=surrogate, engine=engine)(x).sum().backward()
    u0 = x[0].detach()
    s0 = (u0 > theta).double()
    u1 = beta * u0 + x[1].detach() - theta * s0
    h = lambda u: surrogate_derivative(surrogate, u - theta)  # noqa: E731
    assert torch.allclose(x.grad[0], h(u0) + beta * h(u1), rtol=1e-10, atol=1e-12)
    assert torch.allclose(x.grad[1], h(u1), rtol=1e-10, atol=1e-12)


def test_learnable_beta_and_threshold_get_the_closed_form_gradients():
    """Two steps, reset not detached: with L = sum(s0 + s1), u0 = x0 and
    u1 = beta u0 + x1 - theta s0(theta),
    dL/dbeta = sum h'(u1 - theta) u0 and
    dL/dtheta = sum [-h'(u0 - theta) + h'(u1 - theta) (theta h'(u0 - theta) - s0 - 1)]."""
    beta, theta = 0.5, 1.0
    lif = LIF(beta=beta, threshold=theta, learn_beta=True, learn_threshold=True,
              detach_reset=False)
    x = torch.randn(2, 8, 10, generator=torch.Generator().manual_seed(1)) + 1.0
    lif(x).sum().backward()
    u0 = x[0]
    s0 = (u0 > theta).float()
    u1 = beta * u0 + x[1] - theta * s0
    h0, h1 = surrogate_derivative("fast-sigmoid", u0 - theta), \
        surrogate_derivative("fast-sigmoid", u1 - theta)
    expected_beta = (h1 * u0).sum()
    expected_theta = (-h0 + h1 * (theta * h0 - s0 - 1)).sum()
    assert lif.beta_parameter.grad.sum().item() == pytest.approx(expected_beta.item(), rel=1e-5)
    assert lif.threshold_parameter.grad.sum().item() == pytest.approx(
        expected_theta.item(), rel=1e-5)


@pytest.mark.parametrize(
    "kwargs, name",
    [({"beta": 1.2}, "beta"), ({"threshold": -1}, "threshold"), ({"reset": "soft"}, "reset"),
     ({"step_mode": "many"}, "step_mode"), ({"surrogate": "relu"}, "surrogate")],
)
def test_bad_parameters_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        LIF(**kwargs)


@pytest.mark.skipif(importlib.util.find_spec("snntorch") is None, reason="snntorch not installed")
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_matches_snntorch_leaky(reset):
    import snntorch

    x = torch.randn(25, 16, 40) * 1.5
    leaky = snntorch.Leaky(beta=0.5, threshold=1.0, reset_mechanism=reset)
    mem = leaky.init_leaky()
    reference_spikes, reference_mem = [], []
    for t in range(25):
        spk, mem = leaky(x[t], mem)
        reference_spikes.append(spk)
        reference_mem.append(mem)
    membranes = torch.empty_like(x)
    params = LIFParameters(beta=0.5, threshold=1.0, reset=reset)
    spikes, _ = lif_multistep(x, params, membranes_out=membranes)
    assert torch.allclose(membranes, torch.stack(reference_mem), atol=1e-6)
    assert torch.equal(spikes, torch.stack(reference_spikes))
