"""SpikingTransformer (SSA and SDSA attention, with and without BatchNorm): shapes over T, the
attention currents, the scale and attention neurons the init sets, gradients, resets, static
input, validation, ``spikeinit.initialize`` on it, and ``spikeinit train --model transformer``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import spikeinit
from spikeinit.cli.main import main
from spikeinit.errors import InvalidArgumentError
from spikeinit.experiments.training import TrainConfig
from spikeinit.experiments.training.factory import build_model
from spikeinit.models import SpikingSelfAttention, SpikingTransformer
from spikeinit.neurons import LIF
from test_training import write_fake_mnist

ATTENTIONS = ("ssa", "sdsa")
NORMS = ("none", "batch")


def _tiny(attention: str = "ssa", norm: str = "none", **kwargs: object) -> SpikingTransformer:
    options: dict = {"depth": 2, "width": 8, "heads": 2, "patch": 2, "mlp_ratio": 2, **kwargs}
    return SpikingTransformer((1, 8, 8), 5, attention=attention, norm=norm, **options)


def _spikes(shape: tuple[int, ...], rate: float, generator: torch.Generator) -> torch.Tensor:
    return (torch.rand(shape, generator=generator) < rate).float()


@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("steps", [1, 4])
def test_shapes_over_time(attention: str, norm: str, steps: int) -> None:
    torch.manual_seed(0)
    net = _tiny(attention, norm)
    x = torch.rand(steps, 3, 1, 8, 8) * 4
    out = net(x)
    assert out.shape == (steps, 3, 5)
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    shapes = [tuple(y.shape) for y in net.iter_layers(x)]
    assert shapes == [(steps, 3, 16, 8)] * 3 + [(steps, 3, 5)]  # stem, 2 blocks, output
    assert net.tokens == 16
    has_norm = any(isinstance(m, nn.BatchNorm1d) for m in net.modules())
    assert has_norm == (norm == "batch")
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == (norm == "batch")
    assert all(m.bias is None for m in net.modules() if isinstance(m, nn.Linear | nn.Conv2d))
    # stem; per block q, k, v, attention, proj, fc1, fc2; output
    assert len(net.lif_layers) == 1 + 2 * 7 + 1
    assert net.lif_layers[-1] is net.output_lif


def _shuffle_patches(images: torch.Tensor, order: torch.Tensor, patch: int) -> torch.Tensor:
    """``images`` ``(..., C, H, W)`` with its ``patch x patch`` patches moved to ``order``."""
    *lead, channels, height, width = images.shape
    rows, columns = height // patch, width // patch
    patches = images.reshape(*lead, channels, rows, patch, columns, patch)
    patches = patches.movedim(-3, -2).flatten(-4, -3)  # (..., C, rows * columns, p, p)
    patches = patches[..., order, :, :].unflatten(-3, (rows, columns)).movedim(-2, -3)
    return patches.reshape(images.shape)


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_the_position_embedding_is_all_that_sees_where_a_patch_lies(attention: str) -> None:
    torch.manual_seed(8)
    images = torch.rand(3, 4, 1, 8, 8) * 4
    order = torch.randperm(16)
    shuffled = _shuffle_patches(images, order, 2)
    assert not torch.equal(shuffled, images)
    plain = _tiny(attention, position=False, threshold=0.3)
    assert not any(name.endswith("position") for name, _ in plain.named_parameters())
    torch.testing.assert_close(plain(shuffled), plain(images))  # a set of patches
    net = _tiny(attention, threshold=0.3)
    assert net.stem.conv.position.shape == (8, 4, 4)
    torch.testing.assert_close(net(shuffled), net(images))  # zero at init
    with torch.no_grad():
        net.stem.conv.position.normal_()
    assert not torch.equal(list(net.iter_layers(shuffled))[0],
                           list(net.iter_layers(images))[0][:, :, order])


@pytest.mark.parametrize("tokens", [16, 2])  # Q (K^T V) when N > d, (Q K^T) V otherwise
def test_ssa_current_is_the_scaled_product_per_head(tokens: int) -> None:
    generator = torch.Generator().manual_seed(1)
    attention = SpikingSelfAttention(8, heads=2, kind="ssa", scale=0.3)
    q, k, v = (_spikes((2, 3, tokens, 8), 0.3, generator) for _ in range(3))
    current = attention.ssa_current(q, k, v)
    expected = torch.zeros_like(current)
    for head in range(2):
        part = slice(4 * head, 4 * head + 4)
        scores = q[..., part] @ k[..., part].transpose(-2, -1)  # (T, B, N, N): no softmax
        expected[..., part] = 0.3 * scores @ v[..., part]
    torch.testing.assert_close(current, expected)
    # a head's keys never reach another head's output
    k_other = k.clone()
    k_other[..., 4:] = 1 - k_other[..., 4:]
    torch.testing.assert_close(attention.ssa_current(q, k_other, v)[..., :4], current[..., :4])


def test_sdsa_masks_the_queries_with_the_token_sum_of_k_times_v() -> None:
    generator = torch.Generator().manual_seed(2)
    attention = SpikingSelfAttention(6, heads=3, kind="sdsa", scale=0.5)
    k, v = (_spikes((2, 3, 5, 6), 0.5, generator) for _ in range(2))
    torch.testing.assert_close(attention.sdsa_current(k, v), 0.5 * (k * v).sum(dim=2))
    x = torch.rand(2, 3, 5, 6) * 3
    seen = {}
    for name in ("q", "attn_lif"):
        getattr(attention, name).register_forward_hook(
            lambda m, i, o, name=name: seen.setdefault(name, o))
    captured = {}
    attention.proj.linear.register_forward_hook(lambda m, i, o: captured.setdefault("in", i[0]))
    attention(x)
    assert seen["attn_lif"].shape == (2, 3, 6)  # one neuron per channel, not per token
    torch.testing.assert_close(captured["in"], seen["q"] * seen["attn_lif"].unsqueeze(2))


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_scale_and_attention_neurons_are_exposed_and_saved(attention: str) -> None:
    torch.manual_seed(3)
    net = _tiny(attention, threshold=0.3, attn_threshold=0.2)
    module = net.blocks[1].attention
    default = {"ssa": 0.125, "sdsa": 1.0}[attention]
    assert module.scale == default
    assert isinstance(module.attn_lif, LIF) and module.attn_lif.threshold == 0.2
    assert [m.attn_lif for m in net.attentions] == [b.attention.attn_lif for b in net.blocks]
    x = torch.rand(3, 4, 1, 8, 8) * 4
    before = list(net.iter_layers(x))[-2]  # the last block's output stream
    module.scale = 0.01  # a float attribute, as the init sets it
    after = list(net.iter_layers(x))[-2]
    assert not torch.equal(before, after)
    fresh = _tiny(attention, threshold=0.3, attn_threshold=0.2)
    fresh.load_state_dict(net.state_dict())
    assert fresh.blocks[1].attention.scale == 0.01
    assert fresh.blocks[0].attention.scale == default  # untouched
    torch.testing.assert_close(list(fresh.iter_layers(x))[-2], after)


@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize("norm", NORMS)
def test_gradients_reach_every_parameter(attention: str, norm: str) -> None:
    torch.manual_seed(4)
    net = _tiny(attention, norm, threshold=0.3, attn_threshold=0.05)
    out = net(torch.rand(3, 4, 1, 8, 8) * 4)
    out.sum().backward()
    for name, parameter in net.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_every_forward_starts_from_rest(attention: str) -> None:
    torch.manual_seed(5)
    net = _tiny(attention)
    first, second = torch.rand(3, 4, 1, 8, 8) * 4, torch.rand(3, 2, 1, 8, 8) * 4
    out_second = net(second)
    net(first)  # another batch (of another size) in between
    torch.testing.assert_close(net(second), out_second)


@pytest.mark.parametrize("norm", NORMS)
def test_a_static_image_repeated_over_time_matches_its_copy(norm: str) -> None:
    torch.manual_seed(6)
    net = _tiny("ssa", norm)
    image = torch.rand(4, 1, 8, 8) * 4
    repeated = image.unsqueeze(0).expand(3, *image.shape)
    torch.testing.assert_close(net(repeated), net(repeated.contiguous()))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"heads": 3}, "heads must divide"), ({"patch": 3}, "patch must divide"),
     ({"attention": "softmax"}, "attention must be one of"), ({"norm": "layer"}, "norm"),
     ({"depth": 0}, "depth"), ({"scale": -1.0}, "scale")],
)
def test_invalid_arguments_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        _tiny(**kwargs)


@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize("norm", NORMS)
def test_initialize_runs_on_it(attention: str, norm: str) -> None:
    torch.manual_seed(7)
    net = _tiny(attention, norm)
    sample = torch.rand(3, 8, 1, 8, 8)
    result = spikeinit.initialize(net, sample=sample, generator=torch.Generator().manual_seed(0))
    assert len(result.layers) > 0
    rates = []
    hooks = [lif.register_forward_hook(lambda m, i, o: rates.append(float(o.detach().mean())))
             for lif in (net.stem.neurons, net.blocks[0].attention.q.neurons)]
    net(sample)
    for hook in hooks:
        hook.remove()
    assert all(rate > 0 for rate in rates)  # the init set the populations it models to fire


def test_config_resolves_and_confines_the_transformer_options() -> None:
    config = TrainConfig(model="transformer")
    assert (config.depth, config.width, config.heads, config.patch, config.attention) == (
        2, 64, 4, 4, "ssa")
    data = config.to_dict()
    assert {data["heads"], data["patch"], data["attention"]} == {4, "ssa"}
    assert "variant" not in data and data["channels"] == []
    assert TrainConfig.from_dict(data) == config
    mlp = TrainConfig()
    assert mlp.depth == 10 and mlp.heads is None
    assert not {"heads", "patch", "attention"} & set(mlp.to_dict())
    with pytest.raises(InvalidArgumentError, match="applies to the transformer only"):
        TrainConfig(model="cnn", heads=2)
    with pytest.raises(InvalidArgumentError, match="heads must divide"):
        TrainConfig(model="transformer", width=10, heads=4)
    with pytest.raises(InvalidArgumentError, match="patch must divide"):
        TrainConfig(model="transformer", patch=8)  # MNIST is 28x28
    with pytest.raises(InvalidArgumentError, match="channels does not apply"):
        TrainConfig(model="transformer", channels=(8,))
    net = build_model(TrainConfig(model="transformer", depth=1, width=8, heads=2, patch=7,
                                  attention="sdsa", norm="batch"), (1, 28, 28), 10)
    assert isinstance(net, SpikingTransformer)
    assert (net.depth, net.width, net.tokens, net.attention_kind, net.norm_kind) == (
        1, 8, 16, "sdsa", "batch")


def test_cli_train_model_transformer(tmp_path: Path, one_thread: None) -> None:
    data = write_fake_mnist(tmp_path / "data", n_train=32, n_test=16)
    out = tmp_path / "run"
    code = main(["train", "--model", "transformer", "--depth", "1", "--width", "8",
                 "--heads", "2", "--patch", "7", "--attention", "sdsa", "--norm", "batch",
                 "--data-dir", str(data), "--limit-train", "16", "--limit-test", "16",
                 "--epochs", "1", "--batch", "16", "--steps", "2", "--device", "cpu",
                 "--no-progress", "--out", str(out)])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    config = metrics["config"]
    assert (config["model"], config["depth"], config["width"]) == ("transformer", 1, 8)
    assert (config["heads"], config["patch"], config["attention"]) == (2, 7, "sdsa")
    record = metrics["history"][-1]
    assert record["train_loss"] == pytest.approx(record["train_loss"])  # finite, not NaN
    rates = record["firing_rates"]
    assert "blocks.0.attention.attn_lif" in rates and list(rates)[-1] == "output_lif"
