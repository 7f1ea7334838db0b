"""The synaptic side of the engine: oneDNN GEMMs, event-driven training, frames repeated
over time (spikeinit.engine.gemm, event_linear, time_distributed)."""

from __future__ import annotations

import importlib

import pytest
import torch
from torch import nn

from spikeinit.engine import gemm
from spikeinit.engine.event_linear import (
    MAX_EVENT_RATE,
    MAX_EVENT_RATE_MM,
    MAX_EVENT_RATE_TRAINING,
    EventLinearFunction,
    contiguous_transpose,
    max_event_rate,
    static_event_rate,
    workspace,
)
from spikeinit.engine.kernels import compiled_kernel
from spikeinit.engine.layout import repeated_over_time
from spikeinit.models import EventLinear, TimeDistributed
from spikeinit.models.time_distributed import fold_time


def kernel_required() -> None:
    if compiled_kernel() is None:
        pytest.skip("the compiled kernel is unavailable (no C++ compiler)")


def spikes(shape: tuple[int, ...], rate: float, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=generator) < rate).float()


# ----------------------------------------------------------------------------- linear_nt


@pytest.mark.parametrize("transpose_a,transpose_b", [(False, False), (True, False),
                                                     (False, True), (True, True)])
@pytest.mark.parametrize("with_bias", [False, True])
def test_linear_nt_equals_the_float64_product_for_any_strides(transpose_a, transpose_b,
                                                              with_bias):
    generator = torch.Generator().manual_seed(1)
    a = torch.randn(37, 70, generator=generator)
    b = torch.randn(45, 70, generator=generator)
    a_in = a.t().contiguous().t() if transpose_a else a
    b_in = b.t().contiguous().t() if transpose_b else b
    bias = torch.randn(45, generator=generator) if with_bias else None
    expected = a.double() @ b.double().t() + (0 if bias is None else bias.double())
    result = gemm.linear_nt(a_in, b_in, bias)
    assert result.shape == (37, 45) and result.is_contiguous()
    torch.testing.assert_close(result.double(), expected, rtol=0, atol=1e-4)


def test_torch_backend_is_bit_identical_to_nn_linear(monkeypatch):
    monkeypatch.setenv("SPIKEINIT_GEMM", "torch")
    layer = nn.Linear(50, 30)
    x = torch.randn(20, 50)
    assert not gemm.uses_onednn(x, layer.weight)
    assert torch.equal(gemm.linear_nt(x, layer.weight, layer.bias), layer(x))


def test_auto_backend_uses_the_backend_measured_faster(monkeypatch):
    monkeypatch.delenv("SPIKEINIT_GEMM", raising=False)
    x, w = torch.randn(64, 256), torch.randn(256, 256)
    for measured in ("onednn", "torch"):  # the measurement itself: tests/test_backend_choice.py
        monkeypatch.setattr(gemm, "measured_choice", lambda a, b, measured=measured: measured)
        assert gemm.uses_onednn(x, w) == (measured == "onednn" and gemm.onednn_available())
    monkeypatch.setattr(gemm, "measured_choice", lambda a, b: "onednn")
    assert not gemm.uses_onednn(x.double(), w.double())  # float32 only
    assert not gemm.uses_onednn(x[:1].expand(64, 256), w)  # stride-0 operands go to torch.mm
    assert not gemm.uses_onednn(x[:8, :16], w[:4, :16])  # too small to pay for the call
    monkeypatch.setenv("SPIKEINIT_GEMM", "onednn")
    if gemm.onednn_available():
        assert gemm.uses_onednn(x[:8, :16], w[:4, :16])  # asked for explicitly


def test_a_bad_backend_name_is_rejected_with_the_allowed_values(monkeypatch):
    monkeypatch.setenv("SPIKEINIT_GEMM", "blas")
    with pytest.raises(ValueError, match="SPIKEINIT_GEMM must be one of auto, onednn, torch"):
        gemm.linear_nt(torch.randn(2, 3), torch.randn(4, 3))


def test_asking_for_onednn_where_it_is_missing_is_an_error(monkeypatch):
    monkeypatch.setenv("SPIKEINIT_GEMM", "onednn")
    monkeypatch.setattr(gemm, "onednn_available", lambda: False)
    with pytest.raises(RuntimeError, match="SPIKEINIT_GEMM=onednn"):
        gemm.linear_nt(torch.randn(2, 3), torch.randn(4, 3))
    monkeypatch.setenv("SPIKEINIT_GEMM", "auto")
    x, w = torch.randn(2, 3), torch.randn(4, 3)
    assert torch.equal(gemm.linear_nt(x, w), x @ w.t())  # auto falls back silently


# ----------------------------------------------------------------------------- transpose


@pytest.mark.parametrize("shape", [(1, 1), (1, 97), (33, 1), (64, 64), (100, 37), (1000, 784)])
def test_contiguous_transpose_equals_torch(shape):
    matrix = torch.randn(shape, generator=torch.Generator().manual_seed(3))
    result = contiguous_transpose(matrix)
    assert result.is_contiguous()
    assert torch.equal(result, matrix.t())


def test_contiguous_transpose_of_a_transposed_view_is_free():
    storage = torch.randn(20, 30)
    assert contiguous_transpose(storage.t()).data_ptr() == storage.data_ptr()


# ----------------------------------------------------------------------------- training


def reference_gradients(x, weight, bias, grad):
    x64, w64 = x.double().requires_grad_(), weight.double().requires_grad_()
    b64 = None if bias is None else bias.double().requires_grad_()
    torch.nn.functional.linear(x64, w64, b64).backward(grad.double())
    return x64.grad, w64.grad, None if b64 is None else b64.grad


@pytest.mark.parametrize("event", [True, False])
@pytest.mark.parametrize("with_bias", [True, False])
def test_event_linear_function_gradients_match_float64_autograd(event, with_bias):
    kernel_required()
    generator = torch.Generator().manual_seed(4)
    x = spikes((3, 20, 300), 0.08, seed=5)
    x[0, 1, 2] = 0.5  # a graded input is multiplied, not just added
    x.requires_grad_()
    weight = torch.randn(130, 300, generator=generator).requires_grad_()
    bias = torch.randn(130, generator=generator).requires_grad_() if with_bias else None
    grad = torch.randn(3, 20, 130, generator=generator)
    y = EventLinearFunction.apply(x, weight, bias, event)
    expected_y = torch.nn.functional.linear(x.double(), weight.double(),
                                            None if bias is None else bias.double())
    torch.testing.assert_close(y.double(), expected_y, rtol=0, atol=1e-4)
    y.backward(grad)
    grad_x, grad_w, grad_b = reference_gradients(x.detach(), weight.detach(),
                                                 None if bias is None else bias.detach(), grad)
    torch.testing.assert_close(x.grad.double(), grad_x, rtol=0, atol=1e-4)
    torch.testing.assert_close(weight.grad.double(), grad_w, rtol=0, atol=1e-4)
    if with_bias:
        torch.testing.assert_close(bias.grad.double(), grad_b, rtol=0, atol=1e-4)


def test_event_training_takes_the_event_path_and_matches_the_dense_path(monkeypatch):
    kernel_required()
    monkeypatch.setenv("SPIKEINIT_EVENT_RATE", "0.08")  # the path, not the machine's speed
    torch.manual_seed(6)
    event_layer = EventLinear(400, 200)
    dense_layer = EventLinear(400, 200, event_driven=False)
    dense_layer.load_state_dict(event_layer.state_dict())
    x = spikes((4, 16, 400), 0.05, seed=7)
    grad = torch.randn(4, 16, 200, generator=torch.Generator().manual_seed(8))
    for layer in (event_layer, dense_layer):
        layer(x).backward(grad)
    assert event_layer.last_path == "event" and dense_layer.last_path == "dense"
    torch.testing.assert_close(event_layer.weight.grad, dense_layer.weight.grad,
                               rtol=0, atol=1e-4)
    torch.testing.assert_close(event_layer.bias.grad, dense_layer.bias.grad, rtol=1e-6,
                               atol=1e-5)


def test_the_fallback_event_threshold_depends_on_the_gemm_it_replaces(monkeypatch):
    x, w = torch.zeros(64, 256), torch.zeros(256, 256)
    monkeypatch.setenv("SPIKEINIT_GEMM", "torch")
    assert static_event_rate(x, w) == MAX_EVENT_RATE_MM == 0.25
    assert static_event_rate(x, w, training=True) == MAX_EVENT_RATE_MM
    monkeypatch.setenv("SPIKEINIT_GEMM", "onednn")
    if gemm.onednn_available():  # oneDNN on the AMD EPYC is twice as fast: events must be sparser
        assert static_event_rate(x, w) == MAX_EVENT_RATE < MAX_EVENT_RATE_MM
        assert static_event_rate(x, w, training=True) == MAX_EVENT_RATE_TRAINING < MAX_EVENT_RATE
    monkeypatch.setenv("SPIKEINIT_EVENT_RATE", "0.3")  # a fixed rate wins over both
    assert max_event_rate(x, w) == max_event_rate(x, w, training=True) == 0.3


# ----------------------------------------------------------------------------- time-constant


def test_repeated_over_time_recognises_stride_zero_time_only():
    frame = torch.rand(4, 10)
    assert repeated_over_time(frame.expand(3, 4, 10))
    assert not repeated_over_time(frame.expand(3, 4, 10).contiguous())
    assert not repeated_over_time(frame.expand(1, 4, 10))


@pytest.mark.parametrize("event_driven", [True, False])
def test_a_frame_repeated_over_time_is_multiplied_once_with_the_same_result(event_driven,
                                                                            monkeypatch):
    event_linear_module = importlib.import_module("spikeinit.engine.event_linear")
    rows_seen = []

    def recording_linear_nt(a, b, bias=None):
        rows_seen.append(a.shape)
        return gemm.linear_nt(a, b, bias)

    monkeypatch.setattr(event_linear_module, "linear_nt", recording_linear_nt)
    torch.manual_seed(9)
    layer = EventLinear(784, 300, event_driven=event_driven)
    pixels = torch.rand(8, 784, generator=torch.Generator().manual_seed(10))
    repeated = pixels.requires_grad_().expand(5, 8, 784)
    materialized = pixels.detach().expand(5, 8, 784).contiguous().requires_grad_()
    out_once = layer(repeated)
    assert rows_seen == [(8, 784)]  # one frame of 8 rows, not 5 * 8
    out_once.add_(0.0)  # a real tensor: in-place operations work as on nn.Linear's output
    grad = torch.randn(5, 8, 300, generator=torch.Generator().manual_seed(11))
    out_once.backward(grad)
    grad_weight_once = layer.weight.grad.clone()
    layer.weight.grad = None
    out_full = layer(materialized)
    assert rows_seen[3] == (40, 784)  # the materialized input is multiplied on all 40 rows
    out_full.backward(grad)
    torch.testing.assert_close(out_once, out_full, rtol=0, atol=1e-5)
    torch.testing.assert_close(grad_weight_once, layer.weight.grad, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(pixels.grad, materialized.grad.sum(0), rtol=1e-5, atol=1e-5)


def test_fold_time_runs_a_repeated_frame_once_but_not_through_dropout():
    torch.manual_seed(12)
    conv = TimeDistributed(nn.Conv2d(3, 4, 3, padding=1))
    batches = []
    conv.module.register_forward_hook(lambda _m, args, _o: batches.append(args[0].shape[0]))
    frames = torch.rand(2, 3, 8, 8).expand(6, 2, 3, 8, 8)
    out = conv(frames)
    assert out.shape == (6, 2, 4, 8, 8) and batches == [2]  # 2 frames, not 6 * 2
    torch.testing.assert_close(out, conv(frames.contiguous()), rtol=0, atol=1e-6)
    assert batches == [2, 12]
    dropout = nn.Sequential(nn.Dropout(0.5)).train()
    dropped = fold_time(dropout, frames)
    assert not torch.equal(dropped[0], dropped[1])  # a fresh mask at every step


def test_use_backend_overrides_the_environment_and_restores_it(monkeypatch):
    monkeypatch.setenv("SPIKEINIT_GEMM", "auto")
    layer = EventLinear(40, 20, event_driven=False)
    x = torch.randn(6, 40)
    with gemm.use_backend("torch"):
        assert gemm.gemm_backend() == "torch"
        assert torch.equal(layer(x), nn.functional.linear(x, layer.weight, layer.bias))
    assert gemm.gemm_backend() == "auto"
    with pytest.raises(ValueError, match="backend must be one of"), gemm.use_backend("mkl"):
        pass
    assert gemm.gemm_backend() == "auto"


def test_without_the_compiled_kernel_the_gemm_backend_still_serves(monkeypatch):
    event_linear_module = importlib.import_module("spikeinit.engine.event_linear")
    calls = []

    def counting_linear_nt(a, b, bias=None):
        calls.append(a.shape)
        return gemm.linear_nt(a, b, bias)

    monkeypatch.setattr(event_linear_module, "compiled_kernel", lambda: None)
    monkeypatch.setattr(event_linear_module, "linear_nt", counting_linear_nt)
    layer = EventLinear(300, 200)
    x = spikes((4, 8, 300), 0.05, seed=13).requires_grad_()
    y = layer(x)
    assert layer.last_path == "dense"  # no kernel: no events, but still linear_nt
    y.sum().backward()
    assert len(calls) == 3  # forward, input gradient, weight gradient
    torch.testing.assert_close(y, nn.functional.linear(x, layer.weight, layer.bias),
                               rtol=0, atol=1e-5)


def test_workspaces_are_reused_per_role_and_shape_and_never_shared_across_roles():
    first = workspace("input_t", 30, 20)
    assert workspace("input_t", 30, 20).data_ptr() == first.data_ptr()  # no new allocation
    assert workspace("grad_weight_t", 30, 20).data_ptr() != first.data_ptr()
    assert workspace("input_t", 20, 30).data_ptr() != first.data_ptr()


def test_initialize_traces_through_a_frame_run_once():
    """The first conv of a CNN fed a static image runs once and its output is copied over T;
    the initializer's tracer must still see conv -> LIF, with no unmodelled operation."""
    import warnings

    from spikeinit import initialize
    from spikeinit.models import SpikingCNN

    torch.manual_seed(16)
    net = SpikingCNN((1, 12, 12), 4, channels=(4,))
    images = torch.rand(6, 1, 12, 12).expand(5, 6, 1, 12, 12)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        initialize(net, "paper", sample=images)
    assert not [w for w in caught if "not modelled" in str(w.message)]
