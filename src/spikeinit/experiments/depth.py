r"""What the layers of a plain deep MLP carry about the input at init (``spikeinit depth``).

Two measures per layer, on spike patterns :math:`s \in \{0,1\}^{T \times n}` of a batch of
images at init (docs/depth.md, docs/results.md):

- the **class gap**: mean cosine of centred patterns over same-class pairs minus over
  different-class pairs (:func:`class_gap`);
- a **linear probe**: the held-out accuracy of a ridge regression from the flattened pattern
  to the one-hot label (:func:`linear_probe_accuracy`).

The grid of trainings that ``spikeinit depth`` runs, and its table and figures, are in
:mod:`spikeinit.sweep.depth` (the sweep runs experiments; experiments do not import the sweep).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor

from spikeinit.data import dataset_info
from spikeinit.errors import InvalidArgumentError
from spikeinit.experiments.training import (
    TrainConfig,
    build_model,
    encode,
    initialize_model,
    load_data,
)


def class_gap(spikes: Tensor, labels: Tensor) -> float:
    r"""Mean cosine of centred spike patterns, same-class pairs minus different-class pairs.

    ``spikes`` is ``(T, B, n)``; each image's pattern is its ``T n`` spikes, centred by the
    batch's mean pattern:

    .. math::

        \Delta = \overline{\cos(p_i, p_j)}_{y_i = y_j,\,i \ne j}
               - \overline{\cos(p_i, p_j)}_{y_i \ne y_j}.

    Example:
        >>> s = torch.tensor([[[1., 0.], [1., 0.], [0., 1.], [0., 1.]]])
        >>> round(class_gap(s, torch.tensor([0, 0, 1, 1])), 9)
        2.0
    """
    pattern = torch.cat(list(spikes), 1).double()
    pattern = F.normalize(pattern - pattern.mean(0), dim=1)
    cosine = pattern @ pattern.T
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~torch.eye(len(labels), dtype=torch.bool)
    if not bool((same & off_diagonal).any()) or not bool((~same).any()):
        raise InvalidArgumentError(
            "class_gap needs at least two images of one class and two classes")
    return float(cosine[same & off_diagonal].mean() - cosine[~same].mean())


def linear_probe_accuracy(spikes: Tensor, labels: Tensor, held_out: float = 0.25,
                          ridge: float = 1.0) -> float:
    r"""Held-out accuracy of a ridge regression from spike patterns to one-hot labels.

    The first ``1 - held_out`` of the ``B`` images fit
    :math:`W = (X^\top X + \lambda I)^{-1} X^\top Y` on their centred patterns
    :math:`X` (``(B, T n)``); the rest are classified by :math:`\arg\max_k (x W)_k`.

    Example:
        >>> s = torch.tensor([[[1., 0.], [0., 1.]] * 20])
        >>> linear_probe_accuracy(s, torch.tensor([0, 1] * 20))
        1.0
    """
    if not 0.0 < held_out < 1.0:
        raise InvalidArgumentError(f"held_out must be in (0, 1), got {held_out}")
    pattern = torch.cat(list(spikes), 1).double()
    split = int(round(pattern.shape[0] * (1.0 - held_out)))
    if split < 1 or split >= pattern.shape[0]:
        raise InvalidArgumentError(f"{pattern.shape[0]} images leave no training or held-out part")
    mean = pattern[:split].mean(0)
    train, test = pattern[:split] - mean, pattern[split:] - mean
    classes = int(labels.max()) + 1
    target = F.one_hot(labels[:split], classes).double()
    gram = train.T @ train + ridge * torch.eye(train.shape[1], dtype=torch.double)
    weights = torch.linalg.solve(gram, train.T @ target)
    predicted = (test @ weights).argmax(1)
    return float((predicted == labels[split:]).double().mean())


def information_at_init(config: TrainConfig, samples: int = 2000) -> dict[str, list[float]]:
    """Per LIF layer of ``config``'s network at init: rate, class gap and linear probe.

    The network is built and initialized as :func:`~spikeinit.experiments.training.train`
    does (seeded by ``config.seed``); ``samples`` training images are encoded and run through
    it. Layer 0 is the first hidden layer, the last entry the output layer.
    """
    config = replace(config, limit_train=samples, limit_test=10)
    train_data, _ = load_data(config)
    model = build_model(config, train_data.inputs.shape[1:],
                        dataset_info(config.dataset).n_classes)
    inputs, labels = train_data.batch(torch.arange(len(train_data)))
    currents = encode(inputs, config.steps, config.encoding, flatten=True)
    generator = torch.Generator().manual_seed(config.seed)
    initialize_model(model, config.init, currents, config.steps, generator)
    with torch.no_grad():
        layers = list(model.iter_layers(currents))
    return {
        "rate": [float(s.mean()) for s in layers],
        "class_gap": [class_gap(s, labels) for s in layers],
        "probe": [linear_probe_accuracy(s, labels) for s in layers],
    }


def contraction_per_layer(gaps: Sequence[float]) -> float:
    r"""The geometric mean ratio of consecutive class gaps, :math:`(\Delta_L/\Delta_1)^{1/(L-1)}`,
    over the hidden layers (the output layer, whose width differs, is left out).

    Example:
        >>> round(contraction_per_layer([0.2, 0.1, 0.05, 0.9]), 6)
        0.5
    """
    hidden = [float(g) for g in gaps[:-1]]
    if len(hidden) < 2 or hidden[0] <= 0:
        return math.nan
    last = max(hidden[-1], 0.0)
    return (last / hidden[0]) ** (1.0 / (len(hidden) - 1))
