"""The ``sample`` argument of :func:`~spikeinit.network.discover`, ``initialize``,
``calibrate`` and ``report``: its name, and values that can be measured.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from spikeinit.errors import InvalidArgumentError
from spikeinit.nested import all_tensors


def sample_argument(sample: Any, batch: Any, function: str) -> Any:
    """The sample a user passed: ``sample`` (the one name), or ``batch=`` (its old name in
    ``calibrate`` and ``report``, accepted with a :class:`DeprecationWarning`).

    Example:
        >>> sample_argument([1.0], None, "report")
        [1.0]
    """
    if batch is not None:
        if sample is not None:
            raise InvalidArgumentError(f"{function}: pass sample= only (batch= is its old name)")
        warnings.warn(f"{function}(batch=...) is now {function}(sample=...)", DeprecationWarning,
                      stacklevel=3)
        return batch
    if sample is None:
        raise InvalidArgumentError(
            f"{function}: sample is required (a batch of inputs to run the model "
                         "on)")
    return sample


def check_finite_sample(sample: Any) -> None:
    """Raise a ``ValueError`` naming ``sample`` when one of its tensors holds NaN or inf: one
    such value would skew every measured moment (and so every scale) without an error.

    Example:
        >>> try:
        ...     check_finite_sample({"x": torch.tensor([0.0, float("nan")])})
        ... except ValueError as error:
        ...     print(error)
        sample: 1 of its 2 values are NaN or infinite; pass finite inputs
    """
    for tensor in all_tensors(sample):
        if tensor.is_floating_point() or tensor.is_complex():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise InvalidArgumentError(
                    f"sample: {bad} of its {tensor.numel()} values are NaN or "
                                 "infinite; pass finite inputs")
