"""The recurrent SNN (``spikeinit.models.SpikingRNN``) and the sequential MNIST datasets."""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import spikeinit
from spikeinit.cli.main import main
from spikeinit.data import (
    SequenceDataset,
    dataset_info,
    load_dataset,
    load_sequential_mnist,
    pixel_permutation,
)
from spikeinit.errors import InvalidArgumentError
from spikeinit.experiments.training import TrainConfig
from spikeinit.experiments.training.encoding import RunEncoder
from spikeinit.experiments.training.factory import build_model
from spikeinit.models import RecurrentBlock, SpikingRNN, recurrent_lif
from spikeinit.neurons.dynamics import initial_state, lif_step
from spikeinit.neurons.lif import LIF


def _write_idx(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(gzip.compress(bytes([0, 0, 8, array.ndim]) + shape + array.tobytes()))


@pytest.fixture
def mnist_root(tmp_path: Path) -> Path:
    """Random MNIST look-alike IDX files: 40 train and 20 test images, labels cycling 0..9."""
    rng = np.random.default_rng(1)
    root = tmp_path / "data"
    for split, n in (("train", 40), ("t10k", 20)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        _write_idx(root / "mnist" / f"{split}-images-idx3-ubyte.gz", images)
        _write_idx(root / "mnist" / f"{split}-labels-idx1-ubyte.gz",
                   (np.arange(n) % 10).astype(np.uint8))
    return root


def _reference(drive: torch.Tensor, weight: torch.Tensor, lif: LIF) -> tuple[torch.Tensor, ...]:
    """The recurrent LIF as a plain autograd loop: I_t = drive_t + W s_{t-1}, then lif_step."""
    state, spikes, currents = initial_state(drive[0]), [], []
    for t in range(drive.shape[0]):
        current = drive[t] + state.spikes @ weight.t()
        step_spikes, state = lif_step(current, state, lif.params, lif.beta, lif.threshold)
        spikes.append(step_spikes)
        currents.append(current)
    return torch.stack(spikes), torch.stack(currents), state.membrane


# ------------------------------------------------------------------------------ the model
@pytest.mark.parametrize("steps", [1, 5, 28])
def test_shapes_over_time(steps: int, one_thread: None) -> None:
    net = SpikingRNN(3, 16, 10, depth=2)
    out = net(torch.rand(steps, 4, 3))
    assert out.shape == (steps, 4, 10)
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    assert [name for name, _ in net.blocks[0].named_children()] == ["input", "recurrent", "lif"]
    assert net.blocks[0].recurrent.bias is None
    assert net.lif_layers == [net.blocks[0].lif, net.blocks[1].lif, net.output]


@pytest.mark.parametrize("options", [{}, {"reset_order": "immediate"}, {"reset": "zero"},
                                     {"detach_reset": False}, {"surrogate": "fast-sigmoid"}])
def test_loop_and_backward_match_the_autograd_reference(options: dict, one_thread: None) -> None:
    lif = LIF(beta=0.8, **options)
    drive = (torch.randn(12, 3, 8, dtype=torch.float64) * 0.8 + 0.3).requires_grad_()
    weight = (torch.randn(8, 8, dtype=torch.float64) * 0.5).requires_grad_()
    drive_ref = drive.detach().clone().requires_grad_()
    weight_ref = weight.detach().clone().requires_grad_()
    outputs = recurrent_lif(drive, weight, lif)
    expected = _reference(drive_ref, weight_ref, lif)
    assert torch.equal(outputs[0], expected[0])
    torch.testing.assert_close(outputs[1], expected[1])
    assert 0.05 < float(outputs[0].detach().mean()) < 0.95  # both paths of the reset are exercised
    upstream = [torch.randn_like(tensor) for tensor in outputs]
    sum((o * g).sum() for o, g in zip(outputs, upstream)).backward()
    sum((e * g).sum() for e, g in zip(expected, upstream)).backward()
    torch.testing.assert_close(drive.grad, drive_ref.grad)
    torch.testing.assert_close(weight.grad, weight_ref.grad)


def test_recurrent_weights_change_later_steps_only(one_thread: None) -> None:
    block = RecurrentBlock(4, 12)
    x = torch.rand(10, 5, 4) * 2
    with torch.no_grad():
        block.recurrent.weight.zero_()
        feed_forward = block(x)
        plain = LIF()(block.input(x))
        block.recurrent.weight.normal_(0.0, 1.0)
        recurrent = block(x)
    assert torch.equal(feed_forward, plain)  # W_rec = 0: a feed-forward LIF layer
    assert torch.equal(recurrent[0], feed_forward[0])  # s_{-1} = 0: step 0 has no feedback
    assert not torch.equal(recurrent[1:], feed_forward[1:])


def test_gradients_reach_both_weights_through_time(one_thread: None) -> None:
    block = RecurrentBlock(1, 16, beta=0.9)
    with torch.no_grad():
        block.input.weight.fill_(2.0)
        block.recurrent.weight.normal_(0.0, 0.5)
    x = torch.zeros(30, 4, 1)
    x[0] = 1.0  # input only at the first step; the loss reads only the last
    x.requires_grad_()
    block(x)[-1].sum().backward()
    assert block.input.weight.grad.abs().sum() > 0
    assert block.recurrent.weight.grad.abs().sum() > 0
    assert x.grad[0].abs().sum() > 0  # the last step's loss reached the first step's input


def test_block_lif_hooks_see_currents_and_spikes(one_thread: None) -> None:
    block = RecurrentBlock(3, 6)
    seen = []
    block.lif.register_forward_hook(lambda m, inputs, out: seen.append((inputs[0], out)))
    spikes = block(torch.rand(7, 2, 3))
    (currents, hooked), = seen
    assert hooked is spikes and currents.shape == (7, 2, 6)
    assert block.lif.state.membrane.shape == (2, 6)


def test_unsupported_lif_options_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="learn_beta"):
        RecurrentBlock(2, 3, learn_beta=True)


def test_initialize_runs_on_the_rsnn(one_thread: None) -> None:
    net = SpikingRNN(28, 32, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = spikeinit.initialize(net, sample=torch.rand(28, 8, 28))
    assert "blocks.0.input" in [layer.name for layer in result.layers]
    assert net(torch.rand(28, 2, 28)).shape == (28, 2, 10)


# ------------------------------------------------------------------------------ the datasets
def test_sequence_datasets_from_idx_files(mnist_root: Path) -> None:
    images = load_dataset("mnist", mnist_root, "test").images[:, 0]
    rows = load_sequential_mnist("smnist-rows", mnist_root, "test")
    pixels = load_dataset("smnist-pixels", mnist_root, "test")
    permuted = load_dataset("psmnist", mnist_root, "test", limit=5)
    for data, name in ((rows, "smnist-rows"), (pixels, "smnist-pixels"), (permuted, "psmnist")):
        x, y = data[3]
        info = dataset_info(name)
        assert isinstance(data, SequenceDataset) and data.steps == info.steps
        assert x.shape == (info.steps, *info.sample_shape) and x.dtype == torch.float32
        assert int(y) == 3 and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert (rows.sequences == images).all()  # step t is row t
    assert (pixels.sequences[:, :, 0] == images.flatten(1)).all()  # raster order
    assert len(permuted) == 5


def test_the_permutation_is_fixed_and_invertible(mnist_root: Path) -> None:
    perm = pixel_permutation()
    assert np.array_equal(np.sort(perm), np.arange(784))
    assert np.array_equal(perm, pixel_permutation())
    assert not np.array_equal(perm, np.arange(784))
    pixels = load_dataset("smnist-pixels", mnist_root, "train").sequences[:, :, 0]
    permuted = load_dataset("psmnist", mnist_root, "train").sequences[:, :, 0]
    assert (permuted == pixels[:, perm]).all()
    assert (permuted[:, np.argsort(perm)] == pixels).all()


def test_real_sequential_mnist(data_dir: Path) -> None:
    if not (data_dir / "mnist").is_dir():
        pytest.skip("no MNIST files in the shared data")
    rows = load_dataset("smnist-rows", data_dir, "test", limit=4)
    pixels = load_dataset("psmnist", data_dir, "test", limit=4)
    assert rows[0][0].shape == (28, 28) and pixels[0][0].shape == (784, 1)
    assert [int(rows[i][1]) for i in range(4)] == [int(pixels[i][1]) for i in range(4)]


# ------------------------------------------------------------------------------ training
def test_config_takes_the_steps_from_the_dataset() -> None:
    assert TrainConfig(dataset="smnist-rows", model="rsnn").steps == 28
    assert TrainConfig(dataset="psmnist", model="rsnn").steps == 784
    assert TrainConfig().steps == 3
    assert TrainConfig(model="rsnn").depth == 1 and TrainConfig().depth == 10
    assert TrainConfig(dataset="smnist-rows", steps=28).augment is False
    with pytest.raises(InvalidArgumentError, match="steps must be 28"):
        TrainConfig(dataset="smnist-rows", model="rsnn", steps=5)
    with pytest.raises(InvalidArgumentError, match="sequence"):
        TrainConfig(dataset="smnist-rows", model="cnn")
    with pytest.raises(InvalidArgumentError, match="encoding"):
        TrainConfig(dataset="smnist-rows", model="rsnn", encoding="rate")


def test_sequences_are_fed_time_major(one_thread: None) -> None:
    config = TrainConfig(dataset="smnist-rows", model="rsnn", width=8, depth=2)
    batch = torch.rand(4, 28, 28)
    x = RunEncoder(config, event_based=True)(batch)
    assert x.shape == (28, 4, 28) and torch.equal(x[5], batch[:, 5])
    model = build_model(config, (28,), 10)
    assert isinstance(model, SpikingRNN) and len(model.blocks) == 2
    assert model(x).shape == (28, 4, 10)


def test_cli_trains_the_rsnn_on_one_batch(mnist_root: Path, tmp_path: Path,
                                          one_thread: None) -> None:
    out = tmp_path / "run"
    code = main(["train", "--model", "rsnn", "--dataset", "smnist-rows", "--data-dir",
                 str(mnist_root), "--width", "16", "--batch", "16", "--limit-train", "16",
                 "--limit-test", "8", "--epochs", "1", "--device", "cpu", "--threads", "1",
                 "--no-progress", "--out", str(out)])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    config = metrics["config"]
    assert (config["steps"], config["model"], config["depth"]) == (28, "rsnn", 1)
