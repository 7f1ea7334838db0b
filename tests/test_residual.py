"""Residual SNNs: the theory of the three additions, the tracer, and the residual-aware init."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import spikeinit
from spikeinit.experiments.residual import block_rates, framework_resnet
from spikeinit.init.residual import center_filters
from spikeinit.network import discover
from spikeinit.neurons import LIF
from spikeinit.theory.gaussian import tail_probability
from spikeinit.theory.residual import (
    branch_std_for_rate,
    gaussian_sum_rate,
    mixture_rate,
    spike_stream_moments,
    stream_fraction,
    stream_variances,
    sum_moments,
)

RNG = np.random.default_rng(0)


# ---- theory against simulation ---------------------------------------------------------------

def test_sum_moments_match_simulated_independent_terms() -> None:
    spikes = (RNG.random(400_000) < 0.1).astype(float)
    counts = RNG.poisson(1.5, 400_000).astype(float)
    current = RNG.normal(0.3, 0.7, 400_000)
    terms = [(x.mean(), (x**2).mean()) for x in (spikes, counts, current)]
    total = spikes + counts + current
    mean, second = sum_moments(terms)
    assert mean == pytest.approx(total.mean(), rel=1e-9)
    assert second == pytest.approx((total**2).mean(), rel=5e-3)


def test_spike_stream_moments_match_a_simulated_sew_stream() -> None:
    blocks, rate = 12, 0.1
    stream = (RNG.random(200_000) < rate).astype(float)
    simulated = [(stream.mean(), (stream**2).mean())]
    for _ in range(blocks):
        stream = stream + (RNG.random(stream.size) < rate)
        simulated.append((stream.mean(), (stream**2).mean()))
    predicted = spike_stream_moments(blocks, rate, rate, rate)
    for (m, s), (pm, ps) in zip(simulated, predicted):
        assert pm == pytest.approx(m, abs=0.01)
        assert ps == pytest.approx(s, rel=0.02)
    assert predicted[-1][1] > 10 * predicted[0][1]  # quadratic growth: why SEW needs the model


@pytest.mark.parametrize("std, rate, amplitude", [(0.5, 0.1, 1.0), (0.8, 0.3, 1.0),
                                                  (0.3, 0.2, 0.5)])
def test_mixture_rate_matches_monte_carlo(std: float, rate: float, amplitude: float) -> None:
    theta = 1.0
    current = std * RNG.normal(size=500_000) + amplitude * (RNG.random(500_000) < rate)
    assert mixture_rate(theta, std, rate, amplitude) == pytest.approx(
        (current >= theta).mean(), abs=3e-3)


def test_branch_std_solves_the_mixture_and_the_gaussian_sum() -> None:
    std = branch_std_for_rate(1.0, 0.1, shortcut_rate=0.1)
    assert mixture_rate(1.0, std, 0.1) == pytest.approx(0.1, abs=1e-9)
    std = branch_std_for_rate(1.0, 0.05, mean=0.2, variance=0.1)
    assert gaussian_sum_rate(1.0, std, 0.2, 0.1) == pytest.approx(0.05, abs=1e-9)
    # shortcut spikes of height 2 > theta at rate 0.3 fire 0.3 of the neurons without a branch
    assert branch_std_for_rate(1.0, 0.1, shortcut_rate=0.3, amplitude=2.0) is None


def test_stream_fraction_keeps_the_rate_in_its_band() -> None:
    rate, tolerance = 0.1, 0.05
    rho = stream_fraction(rate, tolerance)
    theta_over_sigma = float(-_probit(rate))
    for factor in (1 - rho / 2, 1 + rho / 2):
        got = float(tail_probability(theta_over_sigma / math.sqrt(factor)))
        assert abs(got - rate) <= tolerance * rate + 1e-12
    assert float(tail_probability(theta_over_sigma / math.sqrt(1 + rho))) > rate * 1.05
    variances = stream_variances(20, rho)
    assert variances[0] == pytest.approx(1 - rho / 2)
    assert variances[-1] == pytest.approx(1 + rho / 2)


def test_theory_rejects_bad_rates_naming_them() -> None:
    with pytest.raises(ValueError, match="rate"):
        stream_fraction(1.5, 0.05)
    with pytest.raises(ValueError, match="tolerance"):
        stream_fraction(0.1, 0.0)
    with pytest.raises(ValueError, match="rate"):
        branch_std_for_rate(1.0, 0.0, shortcut_rate=0.1)


def _probit(p: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(p))


def test_center_filters_removes_each_outputs_mean_and_keeps_the_spread() -> None:
    weight = torch.randn(8, 4, 3, 3, generator=torch.Generator().manual_seed(0)) + 0.5
    spread = float(weight.std())
    center_filters(weight)
    assert float(weight.flatten(1).sum(1).abs().max()) < 1e-4
    assert float(weight.std()) == pytest.approx(spread, rel=1e-5)


# ---- the tracer sees the additions -------------------------------------------------------------

class _Block(nn.Module):
    def __init__(self, form: str, how: str = "+") -> None:
        super().__init__()
        self.form, self.how = form, how
        self.fc1, self.lif1 = nn.Linear(16, 16), LIF()
        self.fc2, self.lif2 = nn.Linear(16, 16), LIF()

    def _add(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.how == "torch.add":
            return torch.add(a, b)
        if self.how == "+=":
            a = a.clone()
            a += b
            return a
        return a + b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.form == "sew":
            return self._add(self.lif2(self.fc2(self.lif1(self.fc1(x)))), x)
        if self.form == "ms":
            return self._add(x, self.fc2(self.lif2(self.fc1(self.lif1(x)))))
        return self.lif2(self._add(self.fc2(self.lif1(self.fc1(x))), x))


class _Stack(nn.Module):
    def __init__(self, form: str, blocks: int = 3, how: str = "+") -> None:
        super().__init__()
        self.form = form
        self.stem, self.lif = nn.Linear(16, 16), LIF()
        self.blocks = nn.Sequential(*[_Block(form, how) for _ in range(blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        return self.blocks(h if self.form == "ms" else self.lif(h))


@pytest.mark.parametrize("how", ["+", "torch.add", "+="])
def test_tracer_finds_sew_additions(how: str) -> None:
    network = discover(_Stack("sew", how=how), torch.rand(3, 4, 16))
    assert list(network.additions) == ["blocks.0.add", "blocks.1.add", "blocks.2.add"]
    first, second = network.additions["blocks.0.add"], network.additions["blocks.1.add"]
    assert {(t.source, t.kind) for t in first.operands} == {("blocks.0.lif2", "spikes"),
                                                            ("lif", "spikes")}
    assert {(t.source, t.kind) for t in second.operands} == {("blocks.1.lif2", "spikes"),
                                                             ("blocks.0.add", "sum")}
    fc1 = next(layer for layer in network.layers if layer.name == "blocks.1.fc1")
    assert (fc1.input, fc1.source_name, fc1.target_name) == ("sum", "blocks.0.add",
                                                             "blocks.1.lif1")


def test_tracer_links_membrane_and_bn_add_shortcuts() -> None:
    network = discover(_Stack("ms"), torch.rand(3, 4, 16))
    fc2 = next(layer for layer in network.layers if layer.name == "blocks.0.fc2")
    assert [op.kind for op in fc2.after] == ["residual-add"]
    assert fc2.target_name == "blocks.1.lif1"  # the next block's neurons read the stream
    stem = network.additions["blocks.0.add"].operands
    assert {(t.source, t.kind, t.shared) for t in stem} == {("stem", "synaptic", True),
                                                           ("blocks.0.fc2", "synaptic", False)}
    network = discover(_Stack("bn-add"), torch.rand(3, 4, 16))
    fc2 = next(layer for layer in network.layers if layer.name == "blocks.0.fc2")
    assert fc2.target_name == "blocks.0.lif2" and fc2.after[0].kind == "residual-add"
    assert [t.kind for t in network.additions["blocks.0.add"].others("blocks.0.fc2")] == [
        "spikes"]


def test_plain_models_have_no_additions() -> None:
    from spikeinit.models import SpikingCNN

    network = discover(SpikingCNN((1, 8, 8), 10, channels=(4,)), torch.rand(2, 3, 1, 8, 8))
    assert network.additions == {}


# ---- residual-aware initialize, calibrate and report ----------------------------------------

def _image_sample(seed: int = 0, steps: int = 4, batch: int = 8) -> torch.Tensor:
    """A static, standardized image batch (T, B, 3, 16, 16), as direct encoding feeds one."""
    images = torch.randn(batch, 3, 16, 16, generator=torch.Generator().manual_seed(seed))
    images = torch.nn.functional.avg_pool2d(images, 3, 1, 1)  # spatially smooth, like images
    images = (images - images.mean()) / images.std()
    return images.unsqueeze(0).expand(steps, *images.shape)


def _net(framework: str, form: str, norm: bool, blocks: int = 6) -> nn.Module:
    pytest.importorskip({"spikeinit": "spikeinit", "snntorch": "snntorch",
                         "spikingjelly": "spikingjelly", "norse": "norse"}[framework])
    torch.manual_seed(0)
    return framework_resnet(framework, form, blocks=blocks, channels=16, norm=norm,
                            input_shape=(3, 16, 16))


def _initialized_rates(net: nn.Module, sample: torch.Tensor) -> dict[str, float]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spikeinit.initialize(net, sample=sample)
    assert not [w for w in caught if "not modelled" in str(w.message)]
    return block_rates(net, sample)


FRAMEWORKS = ["spikeinit", "snntorch", "spikingjelly", "norse"]


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("form", ["sew", "ms"])
@pytest.mark.parametrize("norm", [True, False], ids=["bn", "no-bn"])
def test_initialize_puts_every_block_within_25_percent_of_the_target(framework: str, form: str,
                                                                     norm: bool) -> None:
    sample = _image_sample()
    rates = _initialized_rates(_net(framework, form, norm=norm), sample)
    assert all(abs(rate - 0.1) <= 0.25 * 0.1 for rate in rates.values()), rates


@pytest.mark.parametrize("framework", ["snntorch", "spikingjelly"])
@pytest.mark.parametrize("form", ["sew", "ms"])
def test_calibrate_levels_the_blocks_of_a_paper_initialized_stack(framework: str,
                                                                  form: str) -> None:
    """``paper`` leaves unnormalized blocks off (it assumes single spike trains where they
    read counts or currents); calibrate brings each within 10 %."""
    sample = _image_sample()
    net = _net(framework, form, norm=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spikeinit.initialize(net, "paper", sample=sample)
        before = block_rates(net, sample)
        spikeinit.calibrate(net, sample)
    rates = block_rates(net, sample)
    assert any(abs(rate - 0.1) > 0.1 * 0.1 for rate in before.values()), before
    assert all(abs(rate - 0.1) <= 0.1 * 0.1 for rate in rates.values()), rates


def _measured(records) -> list[str]:
    return [r.name for r in records if r.name.startswith("blocks.")
            and any("neurons' current on the sample" in note for note in r.notes)]


def test_initialize_realizes_the_rate_only_with_a_sample_and_a_rate_target() -> None:
    """The measured correction needs the sample, and only ``trainable`` sets a rate: the
    theory's draw stands alone otherwise."""
    sample = _image_sample()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert not _measured(spikeinit.initialize(_net("snntorch", "sew", False)))
        assert not _measured(
            spikeinit.initialize(_net("snntorch", "sew", False), "paper", sample=sample))
        realized = spikeinit.initialize(_net("snntorch", "ms", False), sample=sample)
    assert len(_measured(realized)) == 12  # both layers of all six blocks
    notes = {r.name: "; ".join(r.notes) for r in realized}
    assert "branch 3 of 6 of a membrane stream" in notes["blocks.2.conv2"]
    assert "drives its neurons alone" in notes["blocks.2.conv1"]
    assert "starts a membrane stream" in notes["stem"]


def test_report_flags_the_dead_blocks_of_the_default_init() -> None:
    sample = _image_sample()
    net = _net("snntorch", "sew", norm=False)
    health = spikeinit.report(net, sample)
    dead_blocks = {name.rsplit(".", 1)[0] for name in health.dead if name.startswith("blocks.")}
    assert dead_blocks == {f"blocks.{i}" for i in range(6)}
    spikeinit.initialize(net, sample=sample)
    assert not spikeinit.report(net, sample).dead[:-1]  # only the classifier may be quiet


def test_residual_aware_init_beats_paper_on_a_sew_stack() -> None:
    """``paper`` ignores that SEW blocks read spike counts: its deep blocks fire too much."""
    sample = _image_sample()
    net = _net("spikeinit", "sew", norm=False, blocks=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spikeinit.initialize(net, "paper", sample=sample)
        paper = block_rates(net, sample)
        rates = _initialized_rates(net, sample)
    spread = max(rates.values()) / min(rates.values())
    paper_spread = max(paper.values()) / min(paper.values())
    assert spread < paper_spread



# ---- the acceptance at full size, on real CIFAR-10 (opt-in: pytest -m slow) ---------------------

def _cifar_sample(data_dir, images: int = 16, steps: int = 4) -> torch.Tensor:
    from spikeinit.data import load_dataset

    data = load_dataset("cifar10", data_dir, split="test", limit=images)
    batch = torch.stack([data[i][0] for i in range(images)])
    batch = (batch - batch.mean((0, 2, 3), keepdim=True)) / batch.std((0, 2, 3), keepdim=True)
    return batch.unsqueeze(0).expand(steps, *batch.shape)


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["snntorch", "spikingjelly"])
@pytest.mark.parametrize("form", ["sew", "ms"])
def test_twenty_normalized_blocks_on_cifar_are_within_25_percent(data_dir, framework: str,
                                                                 form: str) -> None:
    pytest.importorskip(framework)
    sample = _cifar_sample(data_dir)
    torch.manual_seed(0)
    net = framework_resnet(framework, form, blocks=20, channels=16, norm=True)
    rates = _initialized_rates(net, sample)
    assert all(abs(rate - 0.1) <= 0.25 * 0.1 for rate in rates.values()), rates


@pytest.mark.slow
@pytest.mark.parametrize("form", ["sew", "ms"])
def test_twenty_unnormalized_blocks_on_cifar_are_within_25_percent_then_10(data_dir,
                                                                          form: str) -> None:
    pytest.importorskip("snntorch")
    sample = _cifar_sample(data_dir)
    torch.manual_seed(0)
    net = framework_resnet("snntorch", form, blocks=20, channels=16, norm=False)
    assert spikeinit.report(net, sample).dead  # the default init: dead blocks, flagged
    rates = _initialized_rates(net, sample)
    assert all(abs(rate - 0.1) <= 0.25 * 0.1 for rate in rates.values()), rates
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spikeinit.calibrate(net, sample)
    rates = block_rates(net, sample)
    assert all(abs(rate - 0.1) <= 0.1 * 0.1 for rate in rates.values()), rates


# ---- the measured correction's pieces ------------------------------------------------------

def test_scale_for_rate_matches_the_gaussian_theory_on_gaussian_currents() -> None:
    """On a Gaussian current held over the steps (or drawn anew, or synaptically filtered),
    the empirical solver finds the std of :func:`input_std_for_rate`."""
    from spikeinit.neurons.parameters import LIFParameters
    from spikeinit.theory.temporal import InputCurrentProcess
    from spikeinit.theory.temporal_gain import input_std_for_rate, scale_for_rate

    params = LIFParameters(beta=0.5, threshold=1.0)
    normals = torch.randn(4, 60_000, generator=torch.Generator().manual_seed(1))
    held = normals[:1].expand(4, -1)
    for currents, kind, decay in ((held, "constant", 0.0), (normals, "iid", 0.0),
                                  (normals, "iid", 0.6)):
        expected = input_std_for_rate(params, 4, 0.1, InputCurrentProcess(kind),
                                      synaptic_decay=decay)
        assert scale_for_rate(currents, params, 0.1, decay) == pytest.approx(expected, rel=0.03)


def test_scale_for_rate_sees_heavy_tails_that_the_gaussian_theory_misses() -> None:
    """A scale mixture (channels of different variance) at the same E[I^2] fires less at the
    default rate 0.1, and more at 0.02, than a Gaussian: the solver's scale differs from the
    Gaussian's both ways."""
    from spikeinit.neurons.parameters import LIFParameters
    from spikeinit.theory.temporal_gain import scale_for_rate

    params = LIFParameters(beta=0.5, threshold=1.0)
    generator = torch.Generator().manual_seed(2)
    gaussian_current = torch.randn(1, 80_000, generator=generator)
    spread = torch.rand(1, 80_000, generator=generator) * 1.5 + 0.25  # E[spread^2] = 1
    mixed = gaussian_current * spread / spread.square().mean().sqrt()
    assert scale_for_rate(mixed, params, 0.1) > 1.05 * scale_for_rate(gaussian_current,
                                                                      params, 0.1)
    assert scale_for_rate(mixed, params, 0.02) < 0.95 * scale_for_rate(gaussian_current,
                                                                       params, 0.02)


def test_scale_for_rate_rejects_zero_currents_and_bad_rates() -> None:
    from spikeinit.neurons.parameters import LIFParameters
    from spikeinit.theory.temporal_gain import scale_for_rate

    with pytest.raises(ValueError, match="all zero"):
        scale_for_rate(torch.zeros(2, 10), LIFParameters(), 0.1)
    with pytest.raises(ValueError, match="rate"):
        scale_for_rate(torch.ones(2, 10), LIFParameters(), 1.5)


def test_stream_branch_factor_gives_the_stream_its_second_moment() -> None:
    from spikeinit.init.realized import stream_branch_factor

    generator = torch.Generator().manual_seed(3)
    base = torch.randn(4, 5000, generator=generator)
    branch = 0.3 * torch.randn(4, 5000, generator=generator) - 0.2 * base  # correlated
    factor = stream_branch_factor(base + branch, branch, 1.3)
    assert factor is not None and factor > 0
    assert float((base + factor * branch).square().mean()) == pytest.approx(1.3, rel=1e-6)
    # a stream already wider than the target: no positive factor reaches it
    assert stream_branch_factor(3 * base + branch, branch, 1.0) is None


def test_realize_levels_a_plain_deep_conv_stack_that_the_theory_alone_loses() -> None:
    """The measured step is the default with a sample (``realize=None``), plain stacks too: a
    plain 18-layer stack with stride-2 stages loses its rate with the theory alone
    (``realize=False``), and keeps it by default and with ``realize=True``."""
    from spikeinit.models import SpikingResNet

    sample = _image_sample()

    def deepest_rate(realize: bool | None) -> float:
        torch.manual_seed(0)
        net = SpikingResNet((3, 16, 16), 10, "plain", (3, 3, 3), (8, 16, 32), "none")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            records = spikeinit.initialize(net, sample=sample, realize=realize)
        measured = any("neurons' current on the sample" in n for r in records for n in r.notes)
        assert measured == (realize is not False)
        return list(block_rates(net, sample).values())[-1]

    assert deepest_rate(False) < 0.05
    assert abs(deepest_rate(None) - 0.1) <= 0.25 * 0.1
    assert abs(deepest_rate(True) - 0.1) <= 0.25 * 0.1


def test_realize_rejects_what_it_cannot_do_naming_it() -> None:
    net = _net("spikeinit", "sew", False, blocks=2)
    with pytest.raises(ValueError, match="sample"):
        spikeinit.initialize(net, realize=True)
    with pytest.raises(ValueError, match="rate target"):
        spikeinit.initialize(net, "paper", sample=_image_sample(), realize=True)
    with pytest.raises(TypeError, match="realize"):
        spikeinit.initialize(net, sample=_image_sample(), realize="yes")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert not _measured(spikeinit.initialize(net, sample=_image_sample(), realize=False))


@pytest.mark.parametrize("form", ["sew", "ms"])
def test_one_pass_and_one_pass_per_layer_agree(form: str, monkeypatch) -> None:
    """Multi-step models are levelled in one pass, rescaling each population's current in
    place; the per-layer passes (what single-step models get) must give the same weights."""
    import spikeinit.init.realized as realized

    sample = _image_sample()

    def weights() -> list[torch.Tensor]:
        net = _net("spikeinit", form, norm=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            spikeinit.initialize(net, sample=sample)
        return [p.detach().clone() for p in net.parameters()]

    one_pass = weights()
    monkeypatch.setattr(realized, "_in_one_pass", lambda *args, **kwargs: {})
    per_layer = weights()
    for a, b in zip(one_pass, per_layer):
        torch.testing.assert_close(a, b, rtol=5e-3, atol=1e-6)


def test_the_scale_solver_keeps_every_channel_when_it_subsamples() -> None:
    """More columns than the solver simulates: the subsample must not alias with the channel
    axis (evenly spaced columns kept only the even channels of a layer of even width)."""
    from spikeinit.neurons import LIFParameters
    from spikeinit.theory.temporal_gain import SCALE_SOLVER_NEURONS, scale_for_rate, solver_columns

    columns = 2 * SCALE_SOLVER_NEURONS
    index = torch.arange(columns, dtype=torch.float32).repeat(4, 1)
    kept = solver_columns(index)
    assert kept.shape == (4, SCALE_SOLVER_NEURONS)
    assert torch.equal(kept, solver_columns(index))  # the same columns every time
    assert torch.unique(kept[0]).numel() == SCALE_SOLVER_NEURONS
    odd = float((kept[0].long() % 2).float().mean())
    assert odd == pytest.approx(0.5, abs=0.02)
    loud = (torch.arange(columns) % 2 == 1).float() * 3.0 + 1.0  # odd channels 4x the even
    currents = torch.randn(4, columns, generator=torch.Generator().manual_seed(0)) * loud
    full = scale_for_rate(currents, LIFParameters(beta=0.5), 0.1, tolerance=1e-4)
    exact = scale_for_rate(currents[:, :SCALE_SOLVER_NEURONS // 2].repeat(1, 2),
                           LIFParameters(beta=0.5), 0.1, tolerance=1e-4)
    assert full == pytest.approx(exact, rel=0.05)
