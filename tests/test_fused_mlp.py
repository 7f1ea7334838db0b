"""The fused Linear -> LIF stack of SpikingMLP: the same spikes and gradients as the module path."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

import spikeinit.models.fused_mlp as fused_mlp
from spikeinit.engine.event_linear import use_event_rate
from spikeinit.engine.kernels import compiled_kernel
from spikeinit.experiments.training import (
    TrainConfig,
    TrainingProbe,
    build_model,
    logits,
    membrane_trace,
)
from spikeinit.models import SpikingMLP
from spikeinit.neurons import LIF, LIFParameters
from spikeinit.neurons.fused import lif_membranes
from spikeinit.neurons.lif import PendingState

ORDERS = ["delayed", "immediate"]
SURROGATES = ["fast-sigmoid", "atan"]


@pytest.fixture
def count_fused(monkeypatch):
    """How many times the fused stack's autograd node was applied."""
    calls = []
    original = fused_mlp.FusedStackFunction.apply

    def counting(*args):
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(fused_mlp.FusedStackFunction, "apply", counting)
    return calls


def twin(sizes, seed=0, scale=3.0, **options):
    """The same network twice: fused (default) and module by module."""
    torch.manual_seed(seed)
    fused_net = SpikingMLP(sizes, **options)
    plain = SpikingMLP(sizes, fused=False, **options)
    plain.load_state_dict(fused_net.state_dict())
    with torch.no_grad():
        for net in (fused_net, plain):
            for layer in net.synapses:
                layer.weight.mul_(scale)
    return fused_net, plain


def run(net, x, leaves, weights):
    """Spikes of every layer (through forward hooks) and the gradient of a loss that uses the
    output spikes and a hidden layer's spikes."""
    seen = []
    handles = [lif.register_forward_hook(lambda _m, _i, out: seen.append(out))
               for lif in net.lif_layers]
    try:
        out = net(x)
    finally:
        for handle in handles:
            handle.remove()
    loss = (out * weights).sum() + 0.3 * seen[0].sum()
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    return [s.detach() for s in seen], grads


@pytest.mark.parametrize(("order", "surrogate", "bias", "repeated"),
                         list(itertools.product(ORDERS, SURROGATES, [False, True],
                                                [False, True])))
def test_fused_stack_equals_module_path(backend, count_fused, order, surrogate, bias, repeated):
    options = dict(beta=0.6, threshold=1.0, reset_order=order, surrogate=surrogate,
                   input_layer=False, bias=bias)
    net, plain = twin([12, 16, 16, 16, 5], **options)
    frame = torch.rand(6, 12, requires_grad=True)
    x = frame.unsqueeze(0).expand(4, 6, 12) if repeated else torch.rand(4, 6, 12,
                                                                       requires_grad=True)
    leaf = frame if repeated else x
    weights = torch.randn(4, 6, 5)
    results = [run(m, x, [leaf, *m.parameters()], weights) for m in (net, plain)]
    assert len(count_fused) == 1  # the fused net ran fused, the other did not
    (spikes_a, grads_a), (spikes_b, grads_b) = results
    for a, b in zip(spikes_a, spikes_b):
        assert torch.equal(a, b)
    assert 0.0 < float(torch.cat([s.flatten() for s in spikes_a]).mean()) < 1.0
    for a, b in zip(grads_a, grads_b):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("reset", "detach"), [("zero", True), ("none", True),
                                               ("subtract", False)])
def test_fused_stack_other_resets_and_learnable_neurons(backend, count_fused, reset, detach):
    options = dict(beta=0.7, threshold=0.8, reset=reset, detach_reset=detach,
                   surrogate="atan", learn_beta=True, learn_threshold=True, input_layer=True)
    net, plain = twin([10, 14, 14, 3], scale=2.0, **options)
    x = torch.rand(5, 4, 10) * 2
    weights = torch.randn(5, 4, 3)
    (spikes_a, grads_a), (spikes_b, grads_b) = [run(m, x, list(m.parameters()), weights)
                                                for m in (net, plain)]
    assert len(count_fused) == 1
    for a, b in zip(spikes_a, spikes_b):
        assert torch.equal(a, b)
    for a, b in zip(grads_a, grads_b):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_fused_stack_float64_gradcheck():
    """The hand-written backward against finite differences, through the spikes, currents
    and membranes the node returns."""
    torch.manual_seed(1)
    net = SpikingMLP([4, 5, 3], input_layer=False, surrogate="atan").double()
    layers = [fused_mlp.StackLayer(linear, lif.params) for linear, lif in net.blocks]
    betas = [torch.full((5,), 0.5, dtype=torch.float64), torch.full((3,), 0.5,
                                                                   dtype=torch.float64)]
    thetas = [torch.full((5,), 10.0, dtype=torch.float64),  # no spikes: a smooth function
              torch.full((3,), 10.0, dtype=torch.float64)]
    x = torch.rand(3, 2, 4, dtype=torch.float64, requires_grad=True)
    weights = [layer.weight.detach().clone().requires_grad_() for layer in net.synapses]

    def function(x, w1, w2):
        out = fused_mlp.linear_lif_stack(x, layers, [w1, w2], [None, None], betas, thetas)
        return (out.currents[-1].square().sum() + out.currents[0].sum()
                + out.spikes[-1].sum() + out.membranes[-1].square().sum()
                + out.membranes[0].sum())

    assert torch.autograd.gradcheck(function, (x, *weights))


def test_fused_stack_float64_gradcheck_without_hidden_membranes(backend):
    """The same with the hidden layers' membranes not asked for: on the compiled kernel those
    layers keep their currents (the frame, for a repeated input) and the backward recomputes
    their membranes and spikes."""
    torch.manual_seed(2)
    net = SpikingMLP([4, 5, 5, 3], input_layer=False, surrogate="atan").double()
    layers = [fused_mlp.StackLayer(linear, lif.params) for linear, lif in net.blocks]
    betas = [torch.full((n,), 0.5, dtype=torch.float64) for n in (5, 5, 3)]
    thetas = [torch.full((n,), 10.0, dtype=torch.float64) for n in (5, 5, 3)]
    frame = torch.rand(2, 4, dtype=torch.float64, requires_grad=True)
    weights = [layer.weight.detach().clone().requires_grad_() for layer in net.synapses]

    def function(frame, *weights):
        out = fused_mlp.linear_lif_stack(frame, layers, weights, [None] * 3, betas, thetas,
                                         repeated=True, steps=3,
                                         membranes=[False, False, True])
        assert out.membranes[0] is None and out.membranes[1] is None
        return (out.currents[-1].square().sum() + out.currents[0].sum()
                + out.spikes[-1].sum() + out.spikes[1].sum()
                + out.membranes[-1].square().sum())

    assert torch.autograd.gradcheck(function, (frame, *weights))


def test_fused_stack_keeps_one_tensor_per_layer_and_no_spikes(backend):
    """What a training step holds: the node saves the input rows and one ``(T, B, n)`` tensor
    per layer (never the spikes, which the backward recomputes), and the LIF states keep the
    last membranes only, their spikes computed when read (the same as the forward's)."""
    torch.manual_seed(0)
    net = SpikingMLP([12, 16, 16, 5], input_layer=False, learn_threshold=True,
                     neuron_shape=None)
    with torch.no_grad():
        for layer in net.synapses:
            layer.weight.mul_(3)
    x = torch.rand(4, 6, 12)
    seen = []
    for lif in net.neurons:
        lif.register_forward_hook(lambda _m, _i, out: seen.append(out))
    saved = []

    def pack(tensor):
        saved.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = net(x)
    spikes = {s.untyped_storage().data_ptr() for s in seen}
    assert not spikes & {t.untyped_storage().data_ptr() for t in saved}
    assert sum(t.shape == (4, 6, 16) for t in saved) == 2
    for lif, layer_spikes in zip(net.neurons, seen):
        assert isinstance(lif.__dict__["_state"], PendingState)
        with torch.no_grad():  # the threshold may change before the state is read
            lif.threshold_parameter.add_(0.5)
        assert torch.equal(lif.state.spikes, layer_spikes[-1].detach())
        assert not isinstance(lif.__dict__["_state"], PendingState)
    assert 0.0 < float(torch.cat([s.detach().flatten() for s in seen]).mean()) < 1.0
    out.sum().backward()


def test_hooks_see_each_layer_and_a_replacing_hook_is_refused(count_fused):
    net = SpikingMLP([6, 8, 4], input_layer=False)
    seen = {}
    lif = net.neurons[-1]
    lif.register_forward_hook(lambda _m, args, out: seen.update(current=args[0], spikes=out))
    x = torch.rand(3, 2, 6)
    out = net(x)
    assert len(count_fused) == 1 and seen["spikes"] is out
    torch.testing.assert_close(seen["current"], net.synapses[-1](net.neurons[0](
        net.synapses[0](x))))
    assert lif.state is not None and torch.equal(lif.state.spikes, out[-1])

    handle = lif.register_forward_hook(lambda _m, _a, out: out * 2)
    with pytest.raises(RuntimeError, match="fused=False"):
        net(x)
    handle.remove()
    handle = net.neurons[0].register_forward_hook(lambda _m, args, _o: args[0].retain_grad())
    with pytest.raises(RuntimeError, match="fused=False"):
        net(x)
    handle.remove()
    net.neurons[0].register_forward_pre_hook(lambda _m, args: args[0].retain_grad())
    assert not net.fusable(x)  # a pre-hook: module by module, where retain_grad works
    net(x).sum().backward()


def test_what_prevents_fusion(count_fused):
    net = SpikingMLP([6, 8, 4], input_layer=False)
    x = torch.rand(3, 2, 6)
    handle = net.synapses[0].register_forward_hook(lambda *_: None)
    assert not net.fusable(x)
    handle.remove()
    net.neurons[0].stateful = True
    assert not net.fusable(x)
    net.neurons[0].stateful = False
    assert net.fusable(x)
    assert not SpikingMLP([6, 8, 4], engine="reference").fusable(x)
    net(x)
    assert len(count_fused) == 1


def test_fused_stack_event_path_matches(count_fused):
    """Wide layers with sparse inputs take the event kernel inside the stack too."""
    if compiled_kernel() is None:
        pytest.skip("needs the compiled kernels")
    net, plain = twin([300, 256, 256, 4], scale=1.0, input_layer=False, beta=0.5)
    x = (torch.rand(3, 8, 300) < 0.05).float()
    weights = torch.randn(3, 8, 4)
    with use_event_rate(0.5):
        (spikes_a, grads_a), (spikes_b, grads_b) = [run(m, x, list(m.parameters()), weights)
                                                    for m in (net, plain)]
        assert net.synapses[0].last_path == plain.synapses[0].last_path == "event"
    assert len(count_fused) == 1
    for a, b in zip(spikes_a, spikes_b):
        assert torch.equal(a, b)
    for a, b in zip(grads_a, grads_b):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("order", "surrogate"), list(itertools.product(ORDERS, SURROGATES)))
def test_lif_membranes_gradient_equals_step_loop(backend, order, surrogate):
    lif = LIF(beta=0.6, threshold=1.0, reset_order=order, surrogate=surrogate)
    reference = LIF(beta=0.6, threshold=1.0, reset_order=order, surrogate=surrogate,
                    engine="reference")
    currents = (torch.randn(5, 4, 7, dtype=torch.float64) + 0.8).requires_grad_()
    weights = torch.randn(5, 4, 7, dtype=torch.float64)
    grads = []
    for layer in (lif, reference):
        membranes = membrane_trace(layer, currents)
        grads.append(torch.autograd.grad((membranes * weights).sum(), currents)[0])
    torch.testing.assert_close(grads[0], grads[1])
    spikes, membranes = lif_membranes(currents, LIFParameters(beta=0.6, reset_order=order))
    assert torch.equal(spikes, (membranes > 1.0).double())


def test_train_step_uses_the_fused_stack_and_matches_the_module_path(count_fused):
    """``spikeinit train``'s model and membrane readout: fused by default, same loss and
    gradients as the module path; the state dict keys are those of the module path."""
    config = TrainConfig(depth=3, width=16, steps=3, batch=8, seed=0)
    model = build_model(config, (1, 6, 6), 10)
    plain = build_model(config, (1, 6, 6), 10)
    plain.fused = False
    assert list(model.state_dict()) == list(plain.state_dict())
    plain.load_state_dict(model.state_dict())
    x = torch.rand(8, 36).unsqueeze(0).expand(3, 8, 36)
    y = torch.randint(0, 10, (8,))
    results = []
    for net in (model, plain):
        probe = TrainingProbe(net, keep_output_current=True)
        loss = F.cross_entropy(logits(net(x), probe, "membrane"), y)
        grads = torch.autograd.grad(loss, list(net.parameters()))
        results.append((loss.detach(), grads, probe.rates()))
        probe.remove()
    assert len(count_fused) == 1
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][2], results[1][2])
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_membrane_readout_reuses_the_stack_membranes(count_fused, monkeypatch):
    """The output layer's membranes come from the fused stack (no second LIF pass), with the
    same values and gradients as recomputing them."""
    torch.manual_seed(3)
    net = SpikingMLP([12, 16, 5], input_layer=False, surrogate="atan")
    with torch.no_grad():
        for layer in net.synapses:
            layer.weight.mul_(3)
    probe = TrainingProbe(net, keep_output_current=True)
    x = torch.rand(4, 6, 12)
    weights = torch.randn(6, 5)
    net(x)
    reused = membrane_trace(net.neurons[-1], probe.output_current)
    recomputed = lif_membranes(probe.output_current, net.neurons[-1].params)[1]
    assert reused is net.neurons[-1].membrane_memo[2]
    torch.testing.assert_close(reused, recomputed, rtol=0, atol=0)
    grads = [torch.autograd.grad((m.mean(0) * weights).sum(), list(net.parameters()),
                                 retain_graph=True) for m in (reused, recomputed)]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    other = probe.output_current.detach().clone()  # other currents: recomputed
    torch.testing.assert_close(membrane_trace(net.neurons[-1], other), recomputed.detach())
    assert membrane_trace(net.neurons[-1], other) is not reused
    net.fused = False
    net(x)
    assert net.neurons[-1].membrane_memo is None
    probe.remove()


def test_a_network_run_in_inference_mode_first_still_trains():
    """The per-neuron vectors of a float are cached; one made in inference mode is an
    inference tensor, which a backward pass cannot save: it is not handed to training."""
    torch.manual_seed(0)
    net = SpikingMLP([4, 5, 3])
    x = torch.rand(3, 2, 4)
    with torch.inference_mode():
        expected = net(x)
    spikes = net(x)
    spikes.sum().backward()
    assert torch.equal(spikes.detach(), expected)
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize("layout", ["flat", "channels-last"])
def test_neuron_vector_takes_one_sample_in_the_layout_order(layout):
    from spikeinit.engine.layout import NeuronLayout
    from spikeinit.neurons.fused import neuron_vector

    currents = torch.rand(2, 3, 4, 2, 2)
    if layout == "channels-last":
        currents = currents.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    per_channel = torch.arange(4.0).view(4, 1, 1)
    vector = neuron_vector(per_channel, 16, currents, NeuronLayout.of(currents))
    layout_of = NeuronLayout.of(currents)
    assert (layout_of.order is None) == (layout == "flat")
    channels = layout_of.flatten(currents * 0 + per_channel)  # same strides as the currents
    assert vector.is_contiguous()
    assert torch.equal(vector, channels[0, 0])
    assert neuron_vector(0.25, 16, currents) is neuron_vector(0.25, 16, currents)  # cached
