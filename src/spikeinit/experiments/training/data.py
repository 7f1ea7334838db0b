"""Datasets held in memory as tensors, and the per-batch preprocessing of training."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import Dataset

from spikeinit.data import (
    DatasetError,
    ImageArrayDataset,
    SequenceDataset,
    dataset_info,
    load_dataset,
)
from spikeinit.experiments.training.augment import (
    channel_statistics,
    crop_padding,
    random_crop_flip,
)
from spikeinit.experiments.training.config import TrainConfig


@dataclass
class ArrayData:
    """A dataset held in memory: ``inputs`` per sample (uint8 images or sequences, or float
    frames). ``event_based``: the inputs carry their own time axis ``(N, T, ...)`` (event
    frames, sequences).

    ``batch`` returns floats ``inputs * scale``, standardised per channel with ``mean`` and
    ``std`` when they are set: ``x' = (x * scale - mean_c) / std_c``.
    """

    inputs: Tensor
    labels: Tensor
    scale: float
    event_based: bool
    mean: Tensor | None = None
    std: Tensor | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batch(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        """Float inputs ``(B, ...)`` and labels ``(B,)`` of ``indices``."""
        x = self.inputs[indices].to(torch.float32)
        if self.scale != 1.0:
            x = x.mul_(self.scale)
        if self.mean is not None and self.std is not None:
            x = x.sub_(self.mean[:, None, None]).div_(self.std[:, None, None])
        return x, self.labels[indices]


def to_arrays(dataset: Dataset, event_based: bool) -> ArrayData:
    """Materialize a map-style dataset (uint8 images stay uint8, 4x smaller than float)."""
    if isinstance(dataset, ImageArrayDataset):
        return ArrayData(dataset.images, dataset.labels, 1.0 / 255.0, event_based)
    if isinstance(dataset, SequenceDataset):
        return ArrayData(dataset.sequences, dataset.labels, 1.0 / 255.0, event_based)
    items = [dataset[i] for i in range(len(dataset))]  # type: ignore[arg-type]
    inputs = torch.stack([torch.as_tensor(x, dtype=torch.float32) for x, _ in items])
    labels = torch.as_tensor([int(y) for _, y in items], dtype=torch.int64)
    return ArrayData(inputs, labels, 1.0, event_based)


def load_data(config: TrainConfig) -> tuple[ArrayData, ArrayData]:
    """Train and test splits of ``config.dataset`` (N-MNIST binned into ``config.steps``;
    a sequence dataset's inputs are time-major like event frames, ``(N, T, features)``).

    With ``config.normalize`` both splits are standardised with the *training* split's
    per-channel mean and standard deviation.
    """
    info = dataset_info(config.dataset)
    frames = config.steps if info.event_based else None
    event_based = info.event_based or info.sequential
    train = load_dataset(config.dataset, config.data_dir, "train", config.limit_train,
                         n_frames=frames)
    test = load_dataset(config.dataset, config.data_dir, "test", config.limit_test,
                        n_frames=frames)
    train_data, test_data = to_arrays(train, event_based), to_arrays(test, event_based)
    check_splits(train_data, test_data, config.dataset)
    if config.normalize:
        mean, std = channel_statistics(train_data.inputs, train_data.scale)
        for data in (train_data, test_data):
            data.mean, data.std = mean, std
    return train_data, test_data


def check_splits(train: ArrayData, test: ArrayData, dataset: str) -> None:
    """Check that both splits hold samples, of one shape, with labels >= 0.

    Raises:
        DatasetError: an empty split, train and test samples of different shapes, or a
            negative label, naming ``dataset`` and the split.
    """
    for split, data in (("train", train), ("test", test)):
        if len(data) == 0:
            raise DatasetError(f"{dataset}: the {split} split holds no samples; check the data "
                               "files and --limit-train/--limit-test")
        if bool((data.labels < 0).any()):
            raise DatasetError(f"{dataset}: the {split} split has negative labels")
    if tuple(train.inputs.shape[1:]) != tuple(test.inputs.shape[1:]):
        raise DatasetError(
            f"{dataset}: the train samples have shape {tuple(train.inputs.shape[1:])} and the "
            f"test samples {tuple(test.inputs.shape[1:])}; both splits must have one shape")


def augment_batch(x: Tensor, config: TrainConfig) -> Tensor:
    """The training-time augmentation of ``config`` applied to a batch ``(B, C, H, W)``."""
    if not config.augment:
        return x
    return random_crop_flip(x, crop_padding(x.shape[-2]), config.flip)
