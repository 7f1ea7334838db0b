"""SpikingResNet (SEW, MS, plain): shapes, structure, residuals, gradients, static input,
validation, and ``spikeinit train --model resnet``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from spikeinit.cli.main import main
from spikeinit.experiments.training import TrainConfig, train
from spikeinit.experiments.training.factory import build_model
from spikeinit.models import BasicBlock, SpikingResNet
from spikeinit.neurons import LIF
from test_training import write_fake_mnist

VARIANTS = ("sew", "ms", "plain")


def _tiny(variant: str, norm: str = "batch", **kwargs: object) -> SpikingResNet:
    options = {"blocks": (1, 1), "channels": (4, 8), **kwargs}
    return SpikingResNet((3, 8, 8), 5, variant=variant, norm=norm, **options)  # type: ignore[arg-type]


def _convs(net: nn.Module, kernel: int) -> list[nn.Conv2d]:
    return [m for m in net.modules()
            if isinstance(m, nn.Conv2d) and m.kernel_size == (kernel, kernel)]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("norm", ["batch", "none"])
def test_output_shapes(variant: str, norm: str) -> None:
    net = _tiny(variant, norm)
    out = net(torch.rand(3, 2, 3, 8, 8))
    assert out.shape == (3, 2, 5)
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    shapes = [tuple(x.shape) for x in net.iter_layers(torch.rand(3, 2, 3, 8, 8))]
    assert shapes == [(3, 2, 4, 8, 8), (3, 2, 4, 8, 8), (3, 2, 8, 4, 4), (3, 2, 5)]
    has_norm = any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert has_norm == (norm == "batch")
    assert all(m.bias is None for m in net.modules() if isinstance(m, nn.Conv2d))
    # T = 1 and a batch of one work too
    assert net(torch.rand(1, 1, 3, 8, 8)).shape == (1, 1, 5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_resnet20_and_resnet18_structure(variant: str) -> None:
    net = SpikingResNet.resnet20((3, 32, 32), 10, variant=variant)
    assert [len(stage) for stage in net.stages] == [3, 3, 3]
    assert len(net.blocks) == 9 and isinstance(net.stages[2][2], BasicBlock)
    assert [name for name, _ in net.iter_blocks()][:4] == [
        "stages.0.0", "stages.0.1", "stages.0.2", "stages.1.0"]
    assert len(_convs(net, 3)) == 19  # stem + 9 blocks x 2
    downsample = 0 if variant == "plain" else 2  # entering stages 2 and 3
    assert len(_convs(net, 1)) == downsample
    assert [net.stages[i][0].conv1.conv.stride for i in range(3)] == [(1, 1), (2, 2), (2, 2)]
    assert [net.stages[i][0].conv1.conv.out_channels for i in range(3)] == [16, 32, 64]
    assert net.stem.conv.kernel_size == (3, 3) and net.stem.conv.out_channels == 16
    assert net.classifier.in_features == 64 and net.classifier.out_features == 10
    assert net.output_size == (8, 8)
    stem_lifs = 0 if variant == "ms" else 1
    final = 1 if variant == "ms" else 0
    shortcut_lifs = downsample if variant == "sew" else 0  # ms projects lif1's spikes
    assert len(net.lif_layers) == stem_lifs + 18 + shortcut_lifs + final + 1

    net18 = SpikingResNet.resnet18((3, 32, 32), 100, variant=variant, norm="none")
    assert [len(stage) for stage in net18.stages] == [2, 2, 2, 2]
    assert len(_convs(net18, 3)) == 17
    assert len(_convs(net18, 1)) == (0 if variant == "plain" else 3)
    assert net18.stem.conv.out_channels == 64 and net18.output_size == (4, 4)
    assert not any(isinstance(m, (nn.MaxPool2d, nn.BatchNorm2d)) for m in net18.modules())
    assert net18(torch.rand(1, 1, 3, 32, 32)).shape == (1, 1, 100)


def test_single_stage_of_twenty_blocks() -> None:
    net = SpikingResNet((1, 8, 8), 3, blocks=(20,), channels=(16,))
    assert len(net.blocks) == 20 and len(_convs(net, 3)) == 41 and not _convs(net, 1)
    assert net(torch.rand(2, 2, 1, 8, 8)).shape == (2, 2, 3)


@pytest.mark.parametrize("variant", VARIANTS)
def test_lif_layers_are_in_forward_order_and_output_is_last(variant: str) -> None:
    net = _tiny(variant, stem_channels=6)
    called: list[nn.Module] = []
    handles = [lif.register_forward_hook(lambda m, i, o: called.append(m))
               for lif in net.lif_layers]
    net(torch.rand(2, 2, 3, 8, 8))
    for handle in handles:
        handle.remove()
    assert called == net.lif_layers
    assert net.lif_layers[-1] is net.output_lif
    # the training loop reads the output layer as the last LIF in module order
    assert [m for m in net.modules() if isinstance(m, LIF)][-1] is net.output_lif
    assert (net.stem_lif is None) == (variant == "ms")
    assert (net.final_lif is None) == (variant != "ms")


@pytest.mark.parametrize("variant", ["sew", "ms"])
def test_identity_shortcut_adds_the_input(variant: str) -> None:
    block = BasicBlock(4, 4, variant=variant, norm="none")
    assert block.downsample is None and block.residual
    with torch.no_grad():
        block.conv2.conv.weight.zero_()  # the residual branch contributes nothing
    x = (torch.rand(3, 2, 4, 6, 6) < 0.3).float()
    torch.testing.assert_close(block(x), x, rtol=0, atol=0)
    plain = BasicBlock(4, 4, variant="plain", norm="none")
    assert not plain.residual
    with torch.no_grad():
        plain.conv2.conv.weight.zero_()
    assert plain(x).abs().sum() == 0


def test_sew_equals_plain_plus_the_block_input() -> None:
    sew = SpikingResNet((3, 8, 8), 5, variant="sew", blocks=(2,), channels=(4,))
    plain = SpikingResNet((3, 8, 8), 5, variant="plain", blocks=(2,), channels=(4,))
    plain.load_state_dict(sew.state_dict())  # no downsample: the same parameters
    x = torch.rand(3, 2, 3, 8, 8) * 3
    stem, first, *_ = list(sew.iter_layers(x))
    _, first_plain, *_ = list(plain.iter_layers(x))
    assert stem.sum() > 0  # the stem spikes
    torch.testing.assert_close(first - first_plain, stem, rtol=0, atol=0)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("norm", ["batch", "none"])
def test_gradients_reach_the_stem(variant: str, norm: str) -> None:
    net = _tiny(variant, norm)
    x = torch.rand(3, 4, 3, 8, 8) * 2
    out = net(x)
    (out.sum() + net.output_lif.state.membrane.sum()).backward()  # type: ignore[union-attr]
    grad = net.stem.conv.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    if norm == "batch":  # every conv's input spikes (without norm a layer may be silent)
        for conv in _convs(net, 3) + _convs(net, 1):
            assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("variant", VARIANTS)
def test_static_broadcast_input_matches_the_materialized_copy(variant: str) -> None:
    net = _tiny(variant)
    frames: list[tuple[int, ...]] = []
    net.stem.conv.register_forward_hook(lambda m, i, o: frames.append(tuple(i[0].shape)))
    image = torch.rand(4, 3, 8, 8) * 2
    static = image.expand(3, *image.shape)
    assert static.stride(0) == 0
    for training in (True, False):
        net.train(training)
        frames.clear()
        torch.testing.assert_close(net(static), net(static.contiguous()))
        # the stem runs once on the B frames of a static image, on T * B frames otherwise
        assert frames == [(4, 3, 8, 8), (12, 3, 8, 8)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(input_shape=(8, 8)), "input_shape"),
        (dict(input_shape=(3, 0, 8)), "input_shape H"),
        (dict(classes=0), "classes"),
        (dict(variant="dense"), "variant must be one of 'sew', 'ms', 'plain'"),
        (dict(norm="layer"), "norm must be one of 'none', 'batch'"),
        (dict(blocks=()), "blocks must list at least one stage"),
        (dict(blocks=3), "blocks must be a sequence"),
        (dict(blocks=(1, 0)), "blocks[1] must be an integer >= 1"),
        (dict(blocks=(1, 1.5)), "blocks[1]"),
        (dict(channels=(4, -1)), "channels[1]"),
        (dict(blocks=(1, 1, 1)), "blocks and channels must have the same length"),
        (dict(stem_channels=0), "stem_channels"),
        (dict(input_shape=(3, 2, 2), blocks=(1, 1, 1), channels=(2, 2, 2)),
         "too many for an input of 2x2"),
    ],
)
def test_validation_names_the_parameter(kwargs: dict, message: str) -> None:
    options = {"input_shape": (3, 8, 8), "blocks": (1, 1), "channels": (4, 8), **kwargs}
    with pytest.raises(ValueError) as error:
        SpikingResNet(**options)
    assert message in str(error.value)


def test_forward_checks_the_input_shape() -> None:
    with pytest.raises(ValueError, match=r"currents must have shape \(T, B, 3, 8, 8\)"):
        _tiny("sew")(torch.rand(2, 3, 8, 8))


def test_train_config_resnet_defaults_and_round_trip() -> None:
    config = TrainConfig(model="resnet")
    assert config.channels == (16, 32, 64) and config.blocks == (3, 3, 3)
    assert config.variant == "sew" and config.width == 0
    data = json.loads(json.dumps(config.to_dict()))
    assert data["blocks"] == [3, 3, 3] and data["channels"] == [16, 32, 64]
    assert TrainConfig.from_dict(data) == config
    custom = TrainConfig(model="resnet", variant="ms", blocks=[2, 1], channels=[8, 16],
                         norm="batch")
    assert custom.blocks == (2, 1) and custom.channels == (8, 16)
    assert TrainConfig.from_dict(json.loads(json.dumps(custom.to_dict()))) == custom
    assert TrainConfig(**custom.to_dict()) == custom
    # blocks alone: channels 16 doubling per stage; channels alone: 3 blocks per stage
    assert TrainConfig(model="resnet", blocks=(1, 1)).channels == (16, 32)
    assert TrainConfig(model="resnet", channels=(8, 16, 32, 64)).blocks == (3, 3, 3, 3)
    # the other models keep their dicts (and sweep keys): no variant or blocks
    cnn = TrainConfig(model="cnn")
    assert cnn.channels == (16, 32) and cnn.blocks is None
    assert "variant" not in cnn.to_dict() and "blocks" not in cnn.to_dict()
    assert TrainConfig.from_dict(cnn.to_dict()) == cnn
    net = build_model(custom, (1, 28, 28), 10)
    assert isinstance(net, SpikingResNet) and net.variant == "ms"
    assert [len(stage) for stage in net.stages] == [2, 1]
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(model="resnet", variant="dense"), "variant must be one of"),
        (dict(model="resnet", blocks=(3, 3), channels=(8, 16, 32)),
         "blocks and channels must have the same length"),
        (dict(model="resnet", blocks=(3, 0, 3)), "blocks[1] must be an integer >= 1"),
        (dict(model="resnet", blocks=()), "blocks must list at least one stage"),
        (dict(model="resnet", width=64), "width must be 0 for the resnet"),
        (dict(model="cnn", blocks=(2, 2)), "blocks applies to the resnet only"),
        (dict(model="mlp", variant="ms"), "variant='ms' applies to the resnet only"),
    ],
)
def test_train_config_resnet_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError) as error:
        TrainConfig(**kwargs)
    assert message in str(error.value)


def test_train_resnet_end_to_end(tmp_path: Path, one_thread: None) -> None:
    data = write_fake_mnist(tmp_path / "data", n_train=32, n_test=16)
    config = TrainConfig(data_dir=str(data), model="resnet", blocks=(1, 1), channels=(4, 8),
                         norm="batch", epochs=1, batch=16, steps=2, stats_samples=32)
    result = train(config, None, device="cpu", progress=False, log=None)
    record = result.history[-1]
    assert record["train_loss"] == pytest.approx(record["train_loss"])  # finite, not NaN
    assert list(record["firing_rates"])[0] == "stem_lif"
    assert list(record["firing_rates"])[-1] == "output_lif"
    assert "classifier" in record["grad_norms"] and "stem.conv" in record["grad_norms"]
    assert all(v > 0 for v in record["grad_norms"].values())


def test_cli_train_model_resnet(tmp_path: Path, one_thread: None) -> None:
    data = write_fake_mnist(tmp_path / "data", n_train=16, n_test=16)
    out = tmp_path / "run"
    code = main(["train", "--model", "resnet", "--variant", "ms", "--blocks", "1", "1",
                 "--channels", "4", "8", "--data-dir", str(data), "--epochs", "1",
                 "--batch", "16", "--steps", "2", "--loss", "counts", "--device", "cpu",
                 "--no-progress", "--out", str(out)])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["model"] == "resnet" and metrics["config"]["variant"] == "ms"
    assert metrics["config"]["blocks"] == [1, 1] and metrics["config"]["channels"] == [4, 8]
    assert "final_lif" in metrics["history"][-1]["firing_rates"]
