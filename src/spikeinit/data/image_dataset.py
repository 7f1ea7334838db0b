"""In-memory dataset of static uint8 images, served as float32 tensors in [0, 1]."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from spikeinit.errors import InvalidArgumentError

__all__ = ["ImageArrayDataset"]


class ImageArrayDataset(Dataset):
    """Static images kept as uint8 ``(N, C, H, W)``; items are ``(float32 image, int64 label)``.

    Storing uint8 keeps CIFAR-10 train at 150 MB instead of 600 MB; each item is converted to
    float32 in ``[0, 1]`` on access. Like :class:`torch.utils.data.TensorDataset`, an item is a
    ``(image, label)`` pair of tensors, with ``image`` of shape ``(C, H, W)`` and ``label`` a
    0-d int64 tensor, so the default ``DataLoader`` collation gives ``(B, C, H, W)`` and ``(B,)``.

    Attributes:
        images: uint8 tensor ``(N, C, H, W)``.
        labels: int64 tensor ``(N,)``.
        classes: class names, index = label.
        source: where the data was read from (for messages and logs).

    Example:
        >>> import numpy as np
        >>> data = ImageArrayDataset(np.full((2, 1, 4, 4), 51, np.uint8), [3, 1], list("0123"))
        >>> image, label = data[0]
        >>> tuple(image.shape), round(float(image[0, 0, 0]), 3), int(label), data.sample_shape
        ((1, 4, 4), 0.2, 3, (1, 4, 4))
    """

    def __init__(
        self,
        images: np.ndarray | torch.Tensor,
        labels: np.ndarray | torch.Tensor | Sequence[int],
        classes: Sequence[str],
        source: str = "",
    ) -> None:
        if isinstance(images, np.ndarray):
            images = np.require(images, requirements=["C", "W"])  # copies read-only buffers
        images_t = torch.as_tensor(images)
        if images_t.dtype != torch.uint8 or images_t.ndim != 4:
            raise InvalidArgumentError(
                f"images must be a uint8 array of shape (N, C, H, W), got {images_t.dtype} "
                f"{tuple(images_t.shape)}"
            )
        labels_t = torch.as_tensor(np.asarray(labels, dtype=np.int64)).reshape(-1)
        if labels_t.numel() != images_t.shape[0]:
            raise InvalidArgumentError(f"{images_t.shape[0]} images but {labels_t.numel()} labels")
        self.images = images_t
        self.labels = labels_t
        self.classes: list[str] = list(classes)
        self.source = source

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index].to(torch.float32).div_(255.0), self.labels[index]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape ``(C, H, W)`` of one input."""
        return tuple(self.images.shape[1:])

    def as_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return all samples at once: float32 images ``(N, C, H, W)`` in [0, 1], int64 labels."""
        return self.images.to(torch.float32).div_(255.0), self.labels.clone()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n={len(self)}, shape={self.sample_shape}, "
            f"classes={len(self.classes)}, source={self.source!r})"
        )
