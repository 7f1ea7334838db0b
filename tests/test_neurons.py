import importlib.util

import pytest
import torch

from spikeinit.neurons import LIF, LIFParameters, lif_multistep

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


def test_surrogate_gradient_flows():
    for surrogate in ("fast-sigmoid", "atan"):
        x = torch.randn(5, 2, 3, requires_grad=True)
        LIF(surrogate=surrogate)(x).sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0


def test_learnable_beta_and_threshold_get_gradients():
    lif = LIF(learn_beta=True, learn_threshold=True, detach_reset=False)
    lif(torch.randn(5, 8, 10) + 1.0).sum().backward()
    assert lif.beta_parameter.grad is not None
    assert lif.threshold_parameter.grad is not None


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
