"""The moments of a data set's inputs (mean and second moment), e.g. for a network's first
layer."""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import torch
from torch.utils.data import Dataset

from spikeinit.errors import InvalidArgumentError

from .image_dataset import ImageArrayDataset
from .validation import check_positive_int

__all__ = ["DatasetMoments", "dataset_moments"]

_CHUNK = 4096


class DatasetMoments(NamedTuple):
    """Element-wise input moments averaged over samples and all input elements.

    Example:
        >>> stats = DatasetMoments(mean=0.5, second_moment=0.3)
        >>> round(stats.variance, 6)
        0.05
    """

    mean: float
    second_moment: float

    @property
    def variance(self) -> float:
        """``E[x^2] - E[x]^2`` (clamped at 0)."""
        return max(self.second_moment - self.mean**2, 0.0)


def _input_of(sample: Any) -> torch.Tensor:
    x = sample[0] if isinstance(sample, (tuple, list)) else sample
    return torch.as_tensor(x)


def dataset_moments(dataset: Dataset, n: int | None = 1000) -> DatasetMoments:
    """Mean ``E[x]`` and second moment ``E[x^2]`` of the inputs of the first ``n`` samples.

    The expectation runs over samples and over every element of an input (pixels, channels,
    and time frames for event data), accumulated in float64. Datasets from
    :func:`~spikeinit.data.load_dataset` put classes round-robin or in file order, so a
    prefix is representative; pass ``n=None`` to use every sample.

    Args:
        dataset: a map-style dataset whose items are ``(input, label)`` or just ``input``.
        n: number of leading samples to use (>= 1), or ``None`` for all.

    Raises:
        ValueError: ``n < 1`` or an empty dataset.

    Example:
        Two images, one all 0 and one all 1: ``E[x] = 0.5``, ``E[x^2] = 0.5``.

        >>> import numpy as np
        >>> from spikeinit.data import ImageArrayDataset
        >>> images = np.stack([np.zeros((1, 2, 2)), np.full((1, 2, 2), 255)]).astype(np.uint8)
        >>> dataset_moments(ImageArrayDataset(images, [0, 1], ["a", "b"]))
        DatasetMoments(mean=0.5, second_moment=0.5)
    """
    count = len(dataset)  # type: ignore[arg-type]
    if n is not None:
        count = min(count, check_positive_int("n", n))
    if count == 0:
        raise InvalidArgumentError("dataset_moments needs a non-empty dataset")
    total = total_sq = 0.0
    elements = 0
    if isinstance(dataset, ImageArrayDataset):  # fast path: vectorized over chunks
        for start in range(0, count, _CHUNK):
            x = dataset.images[start : min(start + _CHUNK, count)].to(torch.float64) / 255.0
            total += float(x.sum())
            total_sq += float((x * x).sum())
            elements += x.numel()
    else:
        for i in range(count):
            x = _input_of(dataset[i]).to(torch.float64)
            total += float(x.sum())
            total_sq += float((x * x).sum())
            elements += x.numel()
    if elements == 0:
        raise InvalidArgumentError("dataset_moments: the inputs have no elements")
    return DatasetMoments(total / elements, total_sq / elements)


#: Deprecated names of this module: the name that replaces each.
DEPRECATED = {"InputStatistics": "DatasetMoments", "input_statistics": "dataset_moments"}


def __getattr__(name: str) -> Any:
    """The deprecated names (:data:`DEPRECATED`), with a ``DeprecationWarning``."""
    if name in DEPRECATED:
        warnings.warn(f"spikeinit.data.{name} is deprecated; use {DEPRECATED[name]}",
                      DeprecationWarning, stacklevel=2)
        return globals()[DEPRECATED[name]]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
