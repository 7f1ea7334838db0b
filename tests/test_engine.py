"""The fused LIF engine: identical spikes, exact backward, both back ends, memory, options."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import pytest
import torch
from torch import Tensor

import spikeinit.neurons.fused as fused
from spikeinit import initialize
from spikeinit.engine.kernels import RECOMPUTE_STEPS, compiled_kernel, kernel_preference
from spikeinit.experiments.training import make_optimizer
from spikeinit.models import EventLinear, TimeDistributed, deep_network
from spikeinit.neurons import LIF, LIFParameters, LIFState, lif_multistep
from spikeinit.neurons.fused import FusedLIFFunction, RecomputingLIFFunction, fused_lif

RESETS = ["subtract", "zero", "none"]
ORDERS = ["delayed", "immediate"]
SURROGATES = ["fast-sigmoid", "atan"]


def random_case(dtype=torch.float64, steps=7, batch=3, neurons=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(steps, batch, neurons, generator=generator, dtype=dtype) * 0.8 + 0.4
    beta = torch.rand(neurons, generator=generator, dtype=dtype) * 0.9
    theta = torch.rand(neurons, generator=generator, dtype=dtype) + 0.5
    u0 = torch.randn(batch, neurons, generator=generator, dtype=dtype)
    s0 = (torch.rand(batch, neurons, generator=generator) > 0.5).to(dtype)
    return x, beta, theta, u0, s0


def gradients(run, params, x, beta, theta, u0, s0, weights):
    """Spikes, final membrane and the gradient of a random linear loss w.r.t. every input."""
    leaves = [t.clone().requires_grad_() for t in (x, beta, theta, u0, s0)]
    spikes, state = run(leaves[0], params, LIFState(leaves[3], leaves[4]), leaves[1], leaves[2])
    loss = (spikes * weights[0]).sum() + (state.membrane * weights[1]).sum()
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    grads = [torch.zeros_like(leaf) if g is None else g for leaf, g in zip(leaves, grads)]
    return spikes.detach(), state.membrane.detach(), grads


@pytest.mark.parametrize(("reset", "order", "detach", "surrogate"),
                         list(itertools.product(RESETS, ORDERS, [True, False], SURROGATES)))
def test_fused_equals_autograd_reference(backend, reset, order, detach, surrogate):
    params = LIFParameters(reset=reset, reset_order=order, detach_reset=detach,
                           surrogate=surrogate, surrogate_slope=3.0)
    case = random_case()
    weights = (torch.randn(7, 3, 5, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64))
    ref_spikes, ref_membrane, ref_grads = gradients(lif_multistep, params, *case, weights)
    spikes, membrane, grads = gradients(fused_lif, params, *case, weights)
    assert ref_spikes.sum() > 0  # the case exercises the reset
    assert torch.equal(spikes, ref_spikes)
    assert torch.equal(membrane, ref_membrane)
    for name, got, want in zip(("current", "beta", "theta", "u0", "s0"), grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize(("reset", "order"), list(itertools.product(RESETS, ORDERS)))
def test_gradcheck_membrane_path(backend, reset, order):
    """Finite differences see the spikes as constants, so the exact derivative is checked
    where the surrogate does not enter: the loss on the final membrane, reset detached."""
    params = LIFParameters(reset=reset, reset_order=order, detach_reset=True)
    x, beta, theta, u0, s0 = random_case(steps=5, batch=2, neurons=3, seed=1)
    inputs = [t.clone().requires_grad_() for t in (x, beta, theta, u0)]

    def final_membrane(x, beta, theta, u0):
        return FusedLIFFunction.apply(x, beta, theta, u0, s0, params)[1]

    membranes = torch.empty_like(x)
    fused_lif(x, params, LIFState(u0, s0), beta, theta, membranes)
    assert (membranes - theta).abs().min() > 1e-4  # no spike flips under the perturbation
    assert torch.autograd.gradcheck(final_membrane, inputs, eps=1e-7, atol=1e-6)


def test_gradcheck_spike_path_against_reference_jacobian(backend):
    """The full Jacobian of (spikes -> loss) through the surrogate equals the reference's."""
    params = LIFParameters(reset="subtract", detach_reset=False, surrogate="atan")
    x, beta, theta, u0, s0 = random_case(steps=4, batch=1, neurons=3, seed=2)

    def fused_spike_sum(current):
        return fused_lif(current, params, LIFState(u0, s0), beta, theta)[0].sum((1, 2))

    def reference_spike_sum(current):
        return lif_multistep(current, params, LIFState(u0, s0), beta, theta)[0].sum((1, 2))

    jac = torch.autograd.functional.jacobian(fused_spike_sum, x)
    ref = torch.autograd.functional.jacobian(reference_spike_sum, x)
    assert jac.abs().sum() > 0
    torch.testing.assert_close(jac, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("order", ORDERS)
def test_float32_spikes_identical_to_reference_at_scale(backend, reset, order):
    params = LIFParameters(beta=0.5, threshold=1.0, reset=reset, reset_order=order)
    x = torch.randn(20, 16, 300) * 1.2
    with torch.no_grad():
        ref, ref_state = lif_multistep(x, params)
        got, state = fused_lif(x, params)
    assert torch.equal(got, ref)
    assert torch.equal(state.membrane, ref_state.membrane)


def test_compiled_and_python_backends_agree_on_float32_gradients(monkeypatch):
    if compiled_kernel() is None:
        pytest.skip("the compiled LIF kernel is unavailable (no C++ compiler)")
    params = LIFParameters(reset="zero", surrogate="fast-sigmoid")
    case = random_case(dtype=torch.float32, steps=10, batch=8, neurons=40, seed=3)
    weights = (torch.randn(10, 8, 40), torch.randn(8, 40))
    compiled = gradients(fused_lif, params, *case, weights)
    monkeypatch.setattr(fused, "uses_compiled_kernel", lambda tensor: False)
    python = gradients(fused_lif, params, *case, weights)
    assert torch.equal(compiled[0], python[0])
    for got, want in zip(compiled[2], python[2]):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_fused_saves_one_membrane_tensor_per_layer():
    """The graph keeps the membranes (T x B x N) and the small beta/theta vectors, and no
    per-step nodes; the reference autograd loop saves tensors at every step."""
    x = torch.randn(20, 8, 100, requires_grad=True)

    def saved(engine):
        storages, count = {}, 0

        def pack(tensor):
            nonlocal count
            count += 1
            storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            LIF(engine=engine, learn_beta=True)(x)
        return count, sum(storages.values())

    membranes = x.numel() * x.element_size()
    fused_count, fused_bytes = saved("fused")
    reference_count, reference_bytes = saved("reference")
    assert fused_count <= 4  # membranes, beta, theta, and the clamp of the learnable beta
    assert membranes <= fused_bytes <= membranes + 1024  # + beta, theta: 100 floats each
    assert reference_count >= 20
    assert reference_bytes > fused_bytes


def test_per_neuron_learnable_beta_and_threshold_train(backend):
    lif = LIF(beta=0.6, threshold=0.9, neuron_shape=(5,), learn_beta=True, learn_threshold=True)
    reference = LIF(beta=0.6, threshold=0.9, neuron_shape=(5,), learn_beta=True,
                    learn_threshold=True, engine="reference")
    x = torch.randn(6, 4, 5) + 0.5
    for layer in (lif, reference):
        layer(x).sum().backward()
    assert lif.beta_parameter.shape == (5,)
    torch.testing.assert_close(lif.beta_parameter.grad, reference.beta_parameter.grad)
    torch.testing.assert_close(lif.threshold_parameter.grad, reference.threshold_parameter.grad)
    assert lif.threshold_parameter.grad.abs().sum() > 0


def test_per_channel_values_broadcast_over_conv_maps(backend):
    beta = torch.tensor([0.2, 0.9]).view(2, 1, 1)
    lif = LIF(beta=0.5, neuron_shape=(2, 1, 1), learn_beta=True)
    with torch.no_grad():
        lif.beta_parameter.copy_(beta)
    x = torch.rand(5, 3, 2, 4, 4) + 0.3
    spikes = lif(x)
    expected, _ = lif_multistep(x, lif.params, beta=beta.expand(2, 4, 4))
    assert torch.equal(spikes.detach(), expected.detach())
    spikes.sum().backward()
    assert lif.beta_parameter.grad.shape == (2, 1, 1)


def test_fixed_per_neuron_values_are_buffers_and_follow_set_parameters():
    lif = LIF(beta=0.5, threshold=1.0, neuron_shape=(3,))
    assert not list(lif.parameters())
    assert set(lif.state_dict()) == {"beta_values", "threshold_values"}
    lif.set_parameters(threshold=0.25)
    assert lif.threshold.tolist() == [0.25, 0.25, 0.25]


def test_neuron_shape_is_validated():
    with pytest.raises(ValueError, match="neuron_shape"):
        LIF(neuron_shape=(0,))
    with pytest.raises(ValueError, match="engine"):
        LIF(engine="cuda-magic")


def test_single_step_state_carries_gradient_across_calls(backend):
    params = dict(beta=0.8, threshold=0.7, detach_reset=False)
    x = (torch.randn(6, 2, 4, dtype=torch.float64) + 0.3).requires_grad_()
    multi = LIF(**params)(x)
    single = LIF(step_mode="single", **params)
    stepped = torch.stack([single(x[t]) for t in range(6)])
    assert torch.equal(multi, stepped)
    (grad_multi,) = torch.autograd.grad(multi.sum(), x)
    (grad_single,) = torch.autograd.grad(stepped.sum(), x)
    torch.testing.assert_close(grad_multi, grad_single, rtol=1e-10, atol=1e-12)


def test_fused_and_reference_membrane_traces_agree_while_training():
    from spikeinit.neurons.dynamics import lif_trace
    from spikeinit.neurons.fused import lif_membranes

    x = torch.randn(4, 3, 10, requires_grad=True)
    spikes, membranes = lif_membranes(x, LIFParameters())
    ref_spikes, ref_membranes = lif_trace(x, LIFParameters())
    assert torch.equal(spikes, ref_spikes)
    torch.testing.assert_close(membranes, ref_membranes, rtol=0, atol=0)
    (grad,) = torch.autograd.grad(membranes.square().sum(), x)
    (ref_grad,) = torch.autograd.grad(ref_membranes.square().sum(), x)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-6, atol=1e-6)


def test_engine_preference_is_validated(monkeypatch):
    monkeypatch.delenv("SPIKEINIT_ENGINE", raising=False)
    monkeypatch.setenv("SPIKEINIT_KERNEL", "gpu")
    with pytest.raises(ValueError, match="SPIKEINIT_KERNEL"):
        kernel_preference()
    monkeypatch.delenv("SPIKEINIT_KERNEL")
    monkeypatch.setenv("SPIKEINIT_ENGINE", "python")  # the old name still works, with a warning
    with pytest.warns(DeprecationWarning, match="SPIKEINIT_KERNEL"):
        assert kernel_preference() == "python"


def test_missing_compiler_falls_back_with_a_warning(tmp_path):
    """No compiler: the engine warns once and the pure-PyTorch loops give the same spikes."""
    code = (
        "import warnings, torch\n"
        "from spikeinit.neurons import LIF, lif_multistep\n"
        "x = torch.randn(5, 2, 7)\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    out = LIF()(x)\n"
        "assert any('pure-PyTorch' in str(w.message) for w in caught), caught\n"
        "assert torch.equal(out, lif_multistep(x, LIF().params)[0])\n"
        "print('ok')\n"
    )
    env = {**os.environ, "CXX": str(tmp_path / "no-such-compiler"),
           "SPIKEINIT_CACHE_DIR": str(tmp_path / "cache"), "SPIKEINIT_KERNEL": "auto"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_layer_major_conv_equals_step_by_step_loop():
    """TimeDistributed runs one conv over all T*B frames; the result equals T separate calls
    followed by a single-step LIF, spike for spike."""
    conv = torch.nn.Conv2d(2, 4, 3, padding=1)
    layer_major = torch.nn.Sequential(TimeDistributed(conv), LIF(beta=0.7, threshold=0.5))
    x = torch.rand(6, 3, 2, 8, 8)
    with torch.no_grad():
        fast = layer_major(x)
        single = LIF(beta=0.7, threshold=0.5, step_mode="single")
        slow = torch.stack([single(conv(x[t])) for t in range(6)])
    assert fast.sum() > 0
    assert torch.equal(fast, slow)
    with pytest.raises(ValueError, match=r"\(T, B, \.\.\.\)"):
        TimeDistributed(conv)(torch.rand(2, 8))


# ------------------------------------------------------------------ event-driven synapses
def sparse_spikes(rows, features, rate, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(rows, features, generator=generator) < rate).float()


def kernel_required():
    if compiled_kernel() is None:
        pytest.skip("the compiled kernel is unavailable (no C++ compiler)")


@pytest.fixture
def fixed_event_rate(monkeypatch):
    """The event path up to a fixed input rate of 0.15 (SPIKEINIT_EVENT_RATE), so that which
    path a test takes does not depend on this machine's speed (the measured rate is tested in
    tests/test_backend_choice.py)."""
    monkeypatch.setenv("SPIKEINIT_EVENT_RATE", "0.15")


@pytest.mark.parametrize("bias", [True, False])
def test_event_linear_equals_dense_product(bias, fixed_event_rate):
    kernel_required()
    layer = EventLinear(600, 130, bias=bias)  # 130 = two blocks of 64 and a tail of 2
    x = sparse_spikes(50, 600, 0.05)
    x[3, 7] = 0.5  # non-binary inputs are multiplied, not just added
    with torch.no_grad():
        y = layer(x)
        dense = torch.nn.functional.linear(x, layer.weight, layer.bias)
    assert layer.last_path == "event"
    torch.testing.assert_close(y, dense, rtol=0, atol=1e-5)


def test_event_linear_falls_back_to_dense_when_it_should(fixed_event_rate):
    kernel_required()
    layer = EventLinear(700, 100)
    sparse, dense_input = sparse_spikes(40, 700, 0.05), sparse_spikes(40, 700, 0.6)
    with torch.no_grad():
        layer(dense_input)
        assert layer.last_path == "dense"  # rate above max_event_rate
        layer(sparse)
        assert layer.last_path == "event"
        narrow = EventLinear(700, 10)
        narrow(sparse)
        assert narrow.last_path == "dense"  # fewer outputs than one block
        small = EventLinear(100, 100)
        small(sparse[:, :100])
        assert small.last_path == "dense"  # too few synapses to pay for the call
    layer(sparse)
    assert layer.last_path == "event"  # training takes the event path too
    layer(dense_input)
    assert layer.last_path == "dense"
    off = EventLinear(700, 100, event_driven=False)
    with torch.no_grad():
        off(sparse)
    assert off.last_path == "dense"


def test_event_linear_sees_weight_updates(fixed_event_rate):
    """Including the fused Adam's, which does not bump the weight's version counter."""
    kernel_required()
    layer = EventLinear(1100, 64, bias=False)
    x = sparse_spikes(10, 1100, 0.05)
    with torch.no_grad():
        before = layer(x)
        layer.weight.mul_(2.0)
        after = layer(x)
    torch.testing.assert_close(after, 2 * before)
    optimizer = make_optimizer(layer.parameters(), lr=0.1)
    layer(torch.rand(3, 1100)).sum().backward()
    optimizer.step()
    with torch.no_grad():
        trained = layer(x)
        assert layer.last_path == "event"
        torch.testing.assert_close(trained, x @ layer.weight.T, rtol=0, atol=1e-5)


def test_event_driven_deep_network_matches_dense_teacher_forced(one_thread, monkeypatch):
    """Layer by layer, fed the same input spikes, the event path and the GEMM agree on every
    spike except where rounding decides a threshold crossing (at most 1e-4 of spikes)."""
    kernel_required()
    # Every layer event-driven, whatever its rate, to compare the two paths everywhere.
    monkeypatch.setenv("SPIKEINIT_EVENT_RATE", "1")
    torch.manual_seed(0)
    net = deep_network(400, 12, beta=0.5, threshold=1.0)
    initialize(net, "paper")
    x = torch.randn(1, 16, 400).expand(10, 16, 400).contiguous()
    with torch.no_grad():
        for linear in net.synapses:
            linear.event_driven = False
        dense_layers = list(net.iter_layers(x))
        for linear in net.synapses:
            linear.event_driven = True
        differing = 0
        for block, previous, expected in zip(net.blocks, dense_layers, dense_layers[1:]):
            block[1].reset_state()
            got = block(previous)
            assert block[0].last_path == "event"
            differing += int((got != expected).sum())
    total = sum(layer.numel() for layer in dense_layers[1:])
    assert dense_layers[-1].mean() > 0.01
    assert differing <= 1e-4 * total


def test_cache_dir_falls_back_to_a_temporary_folder(monkeypatch, tmp_path):
    from spikeinit.engine.kernels import loader as compiled

    monkeypatch.delenv("SPIKEINIT_CACHE_DIR", raising=False)
    monkeypatch.setattr(compiled.Path, "home", lambda: tmp_path)
    assert compiled.cache_dir() == tmp_path / ".cache" / "spikeinit"
    monkeypatch.setattr(compiled.os, "access", lambda path, mode: False)
    fallback = compiled.cache_dir()
    assert fallback.parent == compiled.Path(compiled.tempfile.gettempdir())
    assert fallback.name.startswith("spikeinit-")
    monkeypatch.setenv("SPIKEINIT_CACHE_DIR", str(tmp_path / "chosen"))
    assert compiled.cache_dir() == tmp_path / "chosen"


# ----------------------------------------------------------------------------- recomputation


@pytest.mark.parametrize(("reset", "order", "detach", "surrogate"),
                         list(itertools.product(RESETS, ORDERS, [True, False], SURROGATES)))
def test_recomputing_the_membranes_gives_the_gradients_of_saving_them(reset, order, detach,
                                                                        surrogate):
    if compiled_kernel() is None:
        pytest.skip("the compiled LIF kernel is unavailable (no C++ compiler)")
    params = LIFParameters(reset=reset, reset_order=order, detach_reset=detach,
                           surrogate=surrogate, surrogate_slope=3.0)
    x, beta, theta, u0, s0 = random_case(torch.float32, steps=RECOMPUTE_STEPS, batch=4,
                                         neurons=300, seed=5)  # 300: two chunks, one partial
    weights = torch.randn(RECOMPUTE_STEPS, 4, 300), torch.randn(4, 300)
    results = []
    for function in (FusedLIFFunction, RecomputingLIFFunction):
        leaves = [t.clone().requires_grad_() for t in (x, beta, theta, u0, s0)]
        spikes, u_last, *_ = function.apply(*leaves, params)
        loss = (spikes * weights[0]).sum() + (u_last * weights[1]).sum()
        results.append((spikes.detach(), u_last.detach(), torch.autograd.grad(loss, leaves)))
    (spikes, u_last, grads), (re_spikes, re_u_last, re_grads) = results
    assert spikes.sum() > 0
    assert torch.equal(re_spikes, spikes) and torch.equal(re_u_last, u_last)
    for name, got, want in zip(("current", "beta", "theta", "u0", "s0"), re_grads, grads):
        assert torch.equal(got, want), name


def _saved_storages(steps: int) -> tuple[Tensor, list[int]]:
    x = torch.randn(steps, 8, 100, requires_grad=True)
    pointers: list[int] = []
    with torch.autograd.graph.saved_tensors_hooks(
            lambda t: pointers.append(t.untyped_storage().data_ptr()) or t, lambda t: t):
        LIF()(x)
    return x, pointers


def test_up_to_recompute_steps_the_currents_are_saved_instead_of_the_membranes():
    if compiled_kernel() is None:
        pytest.skip("the compiled LIF kernel is unavailable (no C++ compiler)")
    x, pointers = _saved_storages(RECOMPUTE_STEPS)
    assert x.untyped_storage().data_ptr() in pointers  # no membranes: the currents themselves
    x, pointers = _saved_storages(RECOMPUTE_STEPS + 1)
    assert x.untyped_storage().data_ptr() not in pointers  # the membranes, a new tensor


def test_the_kernel_refuses_to_recompute_more_steps_than_its_buffer_holds():
    if compiled_kernel() is None:
        pytest.skip("the compiled LIF kernel is unavailable (no C++ compiler)")
    x, beta, theta, *_ = random_case(torch.float32, steps=RECOMPUTE_STEPS + 1)
    with pytest.raises(RuntimeError, match="status 2"):
        fused._backward_compiled(torch.ones_like(x), x, beta, theta, None, None, None,
                                 LIFParameters(), recompute=True)


def test_changing_the_saved_currents_in_place_is_reported_not_miscomputed():
    if compiled_kernel() is None:
        pytest.skip("the compiled LIF kernel is unavailable (no C++ compiler)")
    currents = torch.randn(3, 2, 10, requires_grad=True) * 2
    spikes = LIF()(currents)
    currents.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        spikes.sum().backward()
