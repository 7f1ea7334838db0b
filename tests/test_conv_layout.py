"""Channels-last convolutions (spikeinit.engine.conv_layout, issue 17): the layout is chosen by
measurement, every layer downstream follows it without copies, and the results are those of
the contiguous layout.

The equality checks run in float64, where the order of the sums does not flip a spike; the
layout plumbing (LIF, pooling, the frame repeated over time, gradients) is the same as in
float32.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import FakeClock
from spikeinit.engine import conv_layout, decisions, tuning
from spikeinit.engine.conv_layout import (
    conv_frames,
    frame_layout,
    is_channels_last,
    keep_grad_layout,
    use_layout,
)
from spikeinit.engine.layout import repeat_frame
from spikeinit.models import ConvBlock, SpikingCNN, SpikingResNet
from spikeinit.neurons import LIF
from spikeinit.neurons.fused import fused_lif, lif_membranes
from spikeinit.neurons.parameters import LIFParameters

CL = torch.channels_last


def channels_last_steps(x: torch.Tensor) -> torch.Tensor:
    """``(T, B, C, H, W)`` with the same values and channels-last frames."""
    return x.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)


# ----------------------------------------------------------------------------- the LIF


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_the_lif_runs_channels_last_currents_in_place_and_gives_the_same_spikes(
        backend, reset):
    params = LIFParameters(beta=0.6, threshold=0.8, reset=reset)
    currents = torch.randn(4, 3, 5, 6, 7, dtype=torch.float64)
    beta = torch.rand(5, 1, 1, dtype=torch.float64) * 0.5 + 0.3  # per channel
    theta = torch.rand(5, 6, 1, dtype=torch.float64) + 0.5  # per channel and row
    expected, state = fused_lif(currents, params, beta=beta, threshold=theta)
    spikes, cl_state = fused_lif(channels_last_steps(currents), params, beta=beta,
                                 threshold=theta)
    assert is_channels_last(spikes)  # kept the layout: no copy back
    assert torch.equal(spikes, expected)
    assert torch.equal(cl_state.membrane, state.membrane)
    assert torch.equal(cl_state.spikes, state.spikes)
    # a second call continues from the state, in either layout
    more = torch.randn(2, 3, 5, 6, 7, dtype=torch.float64)
    again, _ = fused_lif(more, params, state, beta, theta)
    cl_again, _ = fused_lif(channels_last_steps(more), params, cl_state, beta, theta)
    assert torch.equal(cl_again, again)


def test_the_lif_gradients_do_not_depend_on_the_layout(backend):
    params = LIFParameters(beta=0.5, threshold=0.7)
    base = torch.randn(3, 2, 4, 5, 5, dtype=torch.float64)
    grads = []
    for currents in (base.clone(), channels_last_steps(base)):
        currents.requires_grad_()
        beta = torch.full((4, 1, 1), 0.5, dtype=torch.float64, requires_grad=True)
        theta = torch.full((4, 1, 1), 0.7, dtype=torch.float64, requires_grad=True)
        spikes, membranes = lif_membranes(currents, params, beta, theta)
        weights = torch.arange(spikes.numel(), dtype=torch.float64).view(spikes.shape)
        ((spikes + membranes) * weights.sin()).sum().backward()
        grads.append((currents.grad, beta.grad, theta.grad))
    for contiguous, channels_last in zip(*grads):
        torch.testing.assert_close(channels_last, contiguous)


@pytest.mark.parametrize("out_layout", ["same", "contiguous"])
def test_recorded_membranes_land_at_their_neurons(out_layout):
    params = LIFParameters(beta=0.5, threshold=0.6)
    currents = torch.randn(3, 2, 3, 4, 5, dtype=torch.float64)
    _, expected = lif_membranes(currents, params)
    cl_currents = channels_last_steps(currents)
    recorded = (torch.empty_like(cl_currents) if out_layout == "same"
                else torch.empty(cl_currents.shape, dtype=torch.float64))
    fused_lif(cl_currents, params, membranes_out=recorded)
    assert torch.equal(recorded, expected)
    _, cl_membranes = lif_membranes(cl_currents, params)
    assert torch.equal(cl_membranes, expected) and is_channels_last(cl_membranes)


# ----------------------------------------------------------------------------- time and grads


def test_a_channels_last_frame_repeated_over_time_stays_channels_last():
    leaf = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    frame = leaf.contiguous(memory_format=CL) * 1  # a conv's output, say
    grads: list[torch.Tensor] = []
    frame.register_hook(grads.append)
    steps = repeat_frame(frame, 4)
    assert steps.shape == (4, 2, 3, 4, 5) and is_channels_last(steps)
    assert all(torch.equal(step, frame) for step in steps)
    upstream = channels_last_steps(torch.randn(4, 2, 3, 4, 5, dtype=torch.float64))
    (steps * upstream).sum().backward()
    torch.testing.assert_close(leaf.grad, upstream.sum(0))
    assert is_channels_last(grads[0])  # the layer behind gets its gradient channels-last


def test_a_contiguous_gradient_is_turned_back_before_the_block_sees_it():
    x = channels_last_steps(torch.rand(2, 3, 4, 6, 6)).requires_grad_()
    seen = []
    y = x * 2
    y.register_hook(lambda grad: seen.append(is_channels_last(grad)))
    keep_grad_layout(y).flatten(2).sum().backward()  # flatten copies: contiguous gradient
    assert seen == [True]
    plain = torch.rand(2, 3, 4, 6, 6, requires_grad=True)
    assert keep_grad_layout(plain) is plain  # nothing to keep


# ----------------------------------------------------------------------------- the setting


def test_the_setting_is_checked_and_forced_layouts_are_obeyed(monkeypatch):
    conv, frames = nn.Conv2d(3, 4, 3, padding=1), torch.rand(2, 3, 8, 8)
    monkeypatch.setenv("SPIKEINIT_CONV_LAYOUT", "sideways")
    with pytest.raises(ValueError, match="SPIKEINIT_CONV_LAYOUT must be one of auto, "
                                         "channels_last, contiguous, got 'sideways'"):
        conv_frames(conv, frames)
    monkeypatch.setenv("SPIKEINIT_CONV_LAYOUT", "channels_last")
    assert is_channels_last(conv_frames(conv, frames))
    with use_layout("contiguous"):
        assert conv_frames(conv, frames).is_contiguous()
    with pytest.raises(ValueError, match="layout must be one of"), use_layout("diagonal"):
        pass


@pytest.fixture
def probes(tuning_sandbox: FakeClock, monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """Fake timings: each probe run advances the clock by ``seconds[layout]``."""
    monkeypatch.delenv("SPIKEINIT_CONV_LAYOUT", raising=False)
    seconds = {"channels_last": 1.0, "contiguous": 1.0}
    calls = {"channels_last": 0, "contiguous": 0}
    real = conv_layout._probe_run

    def probe_run(conv, probe, layout, mode):
        run = real(conv, probe, layout, mode)

        def timed() -> None:
            run()
            calls[layout] += 1
            tuning_sandbox.now += seconds[layout]

        return timed

    monkeypatch.setattr(conv_layout, "_probe_run", probe_run)
    conv_layout.forget_choices()
    seconds["calls"] = calls  # type: ignore[assignment]
    yield seconds
    conv_layout.forget_choices()


@pytest.mark.parametrize("channels_last_s,expected", [
    (0.5, "channels_last"),
    (0.97, "contiguous"),  # faster by less than MIN_SPEEDUP: frames stay as they come
    (2.0, "contiguous"),
])
def test_auto_takes_the_layout_measured_faster_and_caches_it(probes, channels_last_s,
                                                             expected):
    probes["channels_last"] = channels_last_s
    conv, frames = nn.Conv2d(4, 8, 3, padding=1), torch.rand(6, 4, 8, 8)
    assert frame_layout(conv, frames) == expected
    assert probes["calls"] == {"channels_last": 1 + tuning.REPEATS,
                               "contiguous": 1 + tuning.REPEATS}
    name = conv_layout.conv_class(conv, frames)
    assert name == "f32 4>8 k3x3 s1 g1 8x8 n8 train"
    entry = conv_layout.layout_choices()[name]
    assert entry["layout"] == expected and entry["source"] == "measured"
    assert entry["frames"] == 6
    # the same class again (another batch size in the same power of two): nothing measured
    assert frame_layout(conv, torch.rand(7, 4, 8, 8)) == expected
    assert sum(probes["calls"].values()) == 2 * (1 + tuning.REPEATS)
    # a new process reads it from the cache
    conv_layout.forget_choices()
    assert frame_layout(conv, frames) == expected
    assert conv_layout.layout_choices()[name]["source"] == "cache"
    lines = decisions.format_choices(decisions.all_choices())
    assert any(name in line and f"-> {expected}" in line for line in lines)


def test_training_inference_and_input_gradients_are_separate_classes(probes):
    conv = nn.Conv2d(4, 8, 3, padding=1)
    frames = torch.rand(6, 4, 8, 8)
    with torch.no_grad():
        frame_layout(conv, frames)
    frame_layout(conv, frames)
    frame_layout(conv, frames.requires_grad_())
    assert sorted(name.split()[-1] for name in conv_layout.layout_choices()) == [
        "infer", "train", "train+input"]


def test_the_probe_is_bounded_and_nothing_is_measured_off_the_cpu(probes, monkeypatch):
    monkeypatch.setattr(conv_layout, "PROBE_MACS", 10_000)
    conv = nn.Conv2d(4, 8, 3, padding=1)  # 8 * 8 * 9 * 4 * 8 = 18432 MACs per frame
    frame_layout(conv, torch.rand(40, 4, 8, 8))
    (entry,) = conv_layout.layout_choices().values()
    assert entry["frames"] == 1
    meta = torch.empty(4, 4, 8, 8, device="meta")
    assert frame_layout(conv, meta) == "contiguous"
    assert len(conv_layout.layout_choices()) == 1


def test_without_budget_the_frames_stay_contiguous(probes, monkeypatch):
    monkeypatch.setattr(tuning, "_budget", tuning.Budget(0.0))
    conv = nn.Conv2d(4, 8, 3, padding=1)
    assert frame_layout(conv, torch.rand(6, 4, 8, 8)) == "contiguous"
    assert sum(probes["calls"].values()) == 0
    (entry,) = conv_layout.layout_choices().values()
    assert entry["source"] == "unmeasured (budget spent)"


# ----------------------------------------------------------------------------- the models


def _run(model: nn.Module, x: torch.Tensor, layout: str):
    """Output, parameter gradients, and how many LIF layers got channels-last currents."""
    model.zero_grad(set_to_none=True)
    seen: list[bool] = []
    handles = [m.register_forward_pre_hook(lambda _m, args: seen.append(is_channels_last(args[0])))
               for m in model.modules() if isinstance(m, LIF)]
    with use_layout(layout):
        out = model(x)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view(out.shape)).sum() \
            .backward()
    for handle in handles:
        handle.remove()
    return out.detach(), [p.grad.clone() for p in model.parameters()], sum(seen)


@pytest.mark.parametrize("build", [
    lambda: SpikingCNN((3, 12, 12), 5, channels=(6, 8), hidden=(16,), beta=0.6,
                       threshold=0.5),
    lambda: SpikingCNN((3, 12, 12), 5, channels=(6, 8), pool="avg", norm="batch",
                       beta=0.6, threshold=0.5),
    lambda: SpikingResNet((3, 12, 12), 5, "sew", (1, 1), (6, 8), norm="none", beta=0.6,
                          threshold=0.5),
    lambda: SpikingResNet((3, 12, 12), 5, "ms", (1, 1), (6, 8), beta=0.6, threshold=0.5),
], ids=["cnn-max", "cnn-avg-bn", "resnet-sew", "resnet-ms-bn"])
@pytest.mark.parametrize("static", [True, False], ids=["static", "sequence"])
def test_models_give_the_same_spikes_and_gradients_channels_last(build, static):
    torch.manual_seed(3)
    model = build().double()
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.weight.data.mul_(3.0)  # enough current to spike in every layer
    if static:
        x = (torch.rand(2, 3, 12, 12, dtype=torch.float64) * 2).expand(4, 2, 3, 12, 12)
    else:
        x = torch.rand(4, 2, 3, 12, 12, dtype=torch.float64) * 2
    out, grads, none = _run(model, x, "contiguous")
    cl_out, cl_grads, conv_lifs = _run(model, x, "channels_last")
    assert none == 0 and conv_lifs >= 2  # the convolutions' neurons ran channels-last
    assert torch.equal(cl_out, out)
    for contiguous, channels_last in zip(grads, cl_grads):
        torch.testing.assert_close(channels_last, contiguous)
    assert any(g.abs().sum() > 0 for g in grads)


def test_a_conv_block_keeps_its_output_channels_last_and_float32_agrees():
    torch.manual_seed(4)
    block = ConvBlock(3, 8, beta=0.5, threshold=0.3)
    x = torch.rand(3, 4, 3, 16, 16)
    with use_layout("channels_last"):
        fast = block(x)
    with use_layout("contiguous"):
        reference = block(x)
    assert is_channels_last(fast) and reference.is_contiguous()
    # float32 sums in another order: a spike may flip where a current sits on the threshold
    assert (fast != reference).float().mean() < 1e-3
