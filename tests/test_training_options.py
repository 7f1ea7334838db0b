"""The options of ``spikeinit train``: encodings, augmentation, normalisation, optimizers,
schedules, BatchNorm in the CNN and presets."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from spikeinit.cli.main import main
from spikeinit.experiments.training import (
    PRESETS,
    TrainConfig,
    build_model,
    encode,
    make_optimizer,
    make_scheduler,
    train,
)
from spikeinit.experiments.training.augment import (
    channel_statistics,
    crop_padding,
    random_crop_flip,
)
from spikeinit.neurons.parameters import LIFParameters
from test_training import write_fake_mnist


@pytest.fixture
def fake_data(tmp_path: Path) -> Path:
    return write_fake_mnist(tmp_path / "data")


# ------------------------------------------------------------------------------ encodings


def test_lif_encoding_passes_only_bright_pixels_as_the_authors_input_layer() -> None:
    # theta = 1, beta = 0.5, soft reset: u1 = x, u2 = 1.5x, u3 = 1.75x before any spike, so
    # within T = 3 only x > 4/7 spikes, once: at step 2 if x > 2/3, else at step 3.
    pixels = torch.tensor([0.5, 0.6, 0.7, 0.9, 1.0]).view(1, 1, 1, 5)
    spikes = encode(pixels, 3, "lif", flatten=True)[:, 0]
    assert spikes.sum(0).tolist() == [0.0, 1.0, 1.0, 1.0, 1.0]
    assert spikes[1].tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert spikes[2].tolist() == [0.0, 1.0, 0.0, 0.0, 0.0]
    lower = encode(pixels, 3, "lif", flatten=True, neuron=LIFParameters(threshold=0.5))
    assert lower.sum() > spikes.sum()


def test_rate_encoding_is_bernoulli_with_the_pixel_probability() -> None:
    pixels = torch.full((2000, 1, 1, 3), 0.0)
    pixels[..., 1], pixels[..., 2] = 0.3, 1.0
    generator = torch.Generator().manual_seed(0)
    spikes = encode(pixels, 4, "rate", flatten=True, generator=generator)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    rates = spikes.mean((0, 1))
    assert rates[0] == 0.0 and rates[2] == 1.0
    assert abs(float(rates[1]) - 0.3) < 0.02
    again = encode(pixels, 4, "rate", flatten=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(spikes, again)


def test_direct_encoding_is_a_stride_zero_view_and_events_refuse_other_encodings() -> None:
    images = torch.rand(4, 1, 5, 5)
    currents = encode(images, 3, "direct")
    assert currents.stride(0) == 0 and torch.equal(currents[1], images)
    with pytest.raises(ValueError, match="encoding='rate' applies to static images"):
        encode(torch.rand(2, 3, 2, 4, 4), 3, "rate", event_based=True)
    with pytest.raises(ValueError, match="encoding must be one of"):
        encode(images, 3, "poisson")


def test_lif_encoding_trains_the_same_network_without_an_input_layer(fake_data: Path,
                                                                    one_thread: None) -> None:
    config = TrainConfig(data_dir=str(fake_data), depth=1, width=16, epochs=1, batch=32,
                         encoding="lif", loss="counts", lr=1e-3)
    result = train(config, None, device="cpu", progress=False, log=None)
    assert result.layers == ["blocks.0.1", "blocks.1.1"]
    # the first Linear is drawn from the input layer's spike rate, not from the pixels' E[x^2]
    direct = train(TrainConfig(**{**config.to_dict(), "encoding": "direct"}), None,
                   device="cpu", progress=False, log=None)
    assert result.init_records[0]["std"] > 2 * direct.init_records[0]["std"]


# --------------------------------------------------------------------------- augmentation


def test_random_crop_shifts_each_image_within_the_padding() -> None:
    torch.manual_seed(0)
    images = torch.zeros(200, 1, 8, 8)
    images[:, :, 4, 4] = 1.0
    cropped = random_crop_flip(images, padding=2, flip=False)
    assert cropped.shape == images.shape
    positions = torch.nonzero(cropped[:, 0])[:, 1:]
    assert len(positions) == 200  # the pixel never leaves an 8x8 image shifted by <= 2
    assert positions.min() >= 2 and positions.max() <= 6
    assert len({tuple(p) for p in positions.tolist()}) == 25  # all 5 x 5 shifts occur


def test_flip_mirrors_about_half_of_the_images() -> None:
    torch.manual_seed(0)
    images = torch.zeros(400, 3, 4, 4)
    images[..., 0] = 1.0
    flipped = random_crop_flip(images, padding=0, flip=True)
    mirrored = flipped[:, 0, 0, -1] == 1.0
    assert torch.equal(flipped[mirrored], images[mirrored].flip(-1))
    assert torch.equal(flipped[~mirrored], images[~mirrored])
    assert 150 < int(mirrored.sum()) < 250


def test_crop_padding_and_channel_statistics() -> None:
    assert crop_padding(32) == 4 and crop_padding(28) == 1 and crop_padding(64) == 8
    images = torch.randint(0, 256, (500, 3, 6, 6), dtype=torch.uint8)
    mean, std = channel_statistics(images, 1 / 255)
    values = images.double().div(255).permute(1, 0, 2, 3).reshape(3, -1)
    torch.testing.assert_close(mean.double(), values.mean(1), atol=1e-6, rtol=0)
    torch.testing.assert_close(std.double(), values.std(1, unbiased=False), atol=1e-6, rtol=0)


def test_normalize_standardises_train_batches(fake_data: Path) -> None:
    from spikeinit.experiments.training import load_data

    config = TrainConfig(data_dir=str(fake_data), normalize=True)
    train_data, test_data = load_data(config)
    x, _ = train_data.batch(torch.arange(len(train_data)))
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1.0) < 1e-2
    assert test_data.mean is train_data.mean


# ------------------------------------------------------------------- optimizer, schedule


def test_warmup_then_cosine_schedule() -> None:
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = make_optimizer([weight], 0.1, kind="adamw", weight_decay=0.01)
    assert isinstance(optimizer, torch.optim.AdamW)
    scheduler = make_scheduler(optimizer, total_steps=10, warmup_steps=4)
    rates = []
    for _ in range(10):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    np.testing.assert_allclose(rates[:4], [0.025, 0.05, 0.075, 0.1])
    expected = [0.05 * (1 + math.cos(math.pi * k / 6)) for k in range(6)]
    np.testing.assert_allclose(rates[4:], expected)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    constant = make_scheduler(make_optimizer([weight], 0.1), 5, 0, "constant")
    assert constant.get_last_lr() == [0.1]
    with pytest.raises(ValueError, match="warmup_steps"):
        make_scheduler(optimizer, 3, 4)


def test_adamw_decays_weights_that_get_no_gradient() -> None:
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = make_optimizer([weight], 0.1, kind="adamw", weight_decay=0.5)
    weight.grad = torch.zeros(3)
    optimizer.step()
    torch.testing.assert_close(weight.detach(), torch.full((3,), 1 - 0.1 * 0.5))


# ------------------------------------------------------------------ models and presets


def test_cnn_with_batchnorm_normalises_conv_currents() -> None:
    config = TrainConfig(model="cnn", channels=(4, 8), norm="batch")
    model = build_model(config, (1, 12, 12), 10)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 2
    currents = {}
    norms[0].register_forward_hook(lambda m, i, o: currents.setdefault("bn", o))
    model(torch.rand(3, 16, 1, 12, 12) * 5)
    out = currents["bn"].detach()
    assert abs(float(out.mean())) < 1e-4 and abs(float(out.std()) - 1) < 0.05


def test_presets_are_valid_configs_and_the_cli_applies_them(fake_data: Path, tmp_path: Path,
                                                            one_thread: None) -> None:
    for options in PRESETS.values():
        TrainConfig(**options)  # every preset validates
    code = main(["train", "--preset", "paper-protocol", "--data-dir", str(fake_data),
                 "--depth", "1", "--width", "16", "--epochs", "1", "--batch", "32",
                 "--lr", "2e-3", "--device", "cpu", "--no-progress", "--out",
                 str(tmp_path / "run")])
    assert code == 0
    import json

    config = json.loads((tmp_path / "run" / "metrics.json").read_text())["config"]
    assert config["encoding"] == "lif" and config["loss"] == "counts"
    assert config["lr"] == 2e-3  # an explicit option overrides the preset


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(encoding="poisson"), "encoding must be one of"),
        (dict(optimizer="sgd"), "optimizer must be one of"),
        (dict(schedule="step"), "schedule must be one of"),
        (dict(weight_decay=-1.0), "weight_decay"),
        (dict(warmup=-1.0), "warmup"),
        (dict(warmup=20.0, epochs=10), r"warmup must be in \[0, epochs=10\]"),
        (dict(norm="layer"), "norm must be one of"),
        (dict(norm="batch"), "applies to the cnn and the resnet"),
        (dict(dataset="nmnist", encoding="rate"), "event-based"),
        (dict(dataset="nmnist", augment=True), "event-based"),
    ],
)
def test_new_options_are_validated(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_cifar_defaults_augment_and_normalise() -> None:
    cifar = TrainConfig(dataset="cifar10", model="cnn")
    assert cifar.augment and cifar.normalize and cifar.flip
    mnist = TrainConfig()
    assert mnist.augment and not mnist.normalize and not mnist.flip  # shifts, no flips
    fashion = TrainConfig(dataset="fashion-mnist")
    assert not fashion.augment and not fashion.normalize
    assert TrainConfig(augment=False).augment is False


@pytest.mark.parametrize("encoding", ["direct", "rate"])
def test_cnn_with_batchnorm_initializes_without_unmodelled_operations(encoding: str) -> None:
    """The conv and its BatchNorm run once on a static frame (direct) or on all T*B frames
    (rate); either way the tracer pairs conv -> BatchNorm -> LIF with nothing unmodelled."""
    import warnings

    from spikeinit.experiments.training import initialize_model

    config = TrainConfig(dataset="cifar10", model="cnn", channels=(4, 8), norm="batch",
                         encoding=encoding)
    model = build_model(config, (3, 16, 16), 10)
    sample = encode(torch.rand(32, 3, 16, 16), 3, encoding)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        records = initialize_model(model, "paper", sample, 3)
    assert [r.name for r in records] == ["features.0.conv", "features.1.conv",
                                         "classifier.0.0"]


def test_batchnorm_makes_the_forward_pass_blind_to_the_conv_init_scale() -> None:
    """What docs/results.md says about BatchNorm and the init: in training mode,
    ``BN(a W x) = BN(W x)`` for any ``a > 0`` (up to BN's eps), so the spikes after a
    conv-BN-LIF block do not depend on the scale the init gives the conv; without BN they do."""
    x = torch.rand(3, 8, 3, 16, 16)
    outputs = {}
    for norm in ("batch", "none"):
        config = TrainConfig(dataset="cifar10", model="cnn", channels=(8,), norm=norm)
        for scale in (1.0, 3.0):
            torch.manual_seed(0)
            model = build_model(config, (3, 16, 16), 10)
            with torch.no_grad():
                model.features[0].conv.weight.mul_(scale)
            with torch.no_grad():
                outputs[norm, scale] = model.features[0](x)
    same = (outputs["batch", 1.0] == outputs["batch", 3.0]).float().mean()
    assert same > 0.999  # only spikes within rounding (and eps) of the threshold may flip
    rates = {key: float(out.mean()) for key, out in outputs.items()}
    assert rates["none", 3.0] > 1.5 * rates["none", 1.0]


# ------------------------------------------------------------------------------ gradient clipping


def test_clip_grad_is_checked_and_left_out_of_the_config_when_unset() -> None:
    assert "clip_grad" not in TrainConfig().to_dict()
    assert TrainConfig(clip_grad=1.0).to_dict()["clip_grad"] == 1.0
    assert TrainConfig.from_dict(TrainConfig(clip_grad=0.5).to_dict()).clip_grad == 0.5
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="clip_grad"):
            TrainConfig(clip_grad=bad)


def _recurrent_config(data: Path, **options) -> TrainConfig:
    return TrainConfig(dataset="smnist-rows", data_dir=str(data), model="rsnn", width=16,
                       epochs=1, batch=32, limit_train=128, limit_test=64, **options)


def test_a_loose_clip_changes_nothing_and_a_tight_one_changes_the_run(fake_data: Path) -> None:
    plain = train(_recurrent_config(fake_data))
    loose = train(_recurrent_config(fake_data, clip_grad=1e30))
    tight = train(_recurrent_config(fake_data, clip_grad=1e-3))
    assert loose.history[0]["skipped_steps"] == 0 and "skipped_steps" not in plain.history[0]
    assert loose.history[0]["train_loss"] == plain.history[0]["train_loss"]
    assert loose.history[0]["test_accuracy"] == plain.history[0]["test_accuracy"]
    assert tight.history[0]["train_loss"] != plain.history[0]["train_loss"]


def test_a_step_whose_gradients_are_not_finite_is_skipped(fake_data: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from spikeinit.experiments.training import optim

    calls = {"n": 0}
    real = optim.clipped_step

    def poisoned(model, max_norm, optimizer):
        calls["n"] += 1
        if calls["n"] == 2:  # the second step's gradients overflow
            next(model.parameters()).grad.fill_(math.inf)
        return real(model, max_norm, optimizer)

    monkeypatch.setattr("spikeinit.experiments.training.loop.clipped_step", poisoned)
    result = train(_recurrent_config(fake_data, clip_grad=1.0))
    record = result.history[0]
    assert calls["n"] == 4 and record["skipped_steps"] == 1
    assert all(math.isfinite(v) for v in record["grad_norms"].values())
    assert math.isfinite(record["train_loss"])
