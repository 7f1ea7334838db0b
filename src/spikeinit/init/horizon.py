r"""The horizon of the temporal theory: the steps over which ``initialize`` evaluates it.

The temporal mean field (:mod:`spikeinit.theory.temporal`) follows the joint statistics of all
:math:`T` steps: Gaussian currents with a :math:`T \times T` covariance (an eigendecomposition,
:math:`O(T^3)`) and Monte Carlo populations of :math:`T` steps, for every evaluation of every
layer's solver. Its answer settles once the run is many membrane times :math:`1/(1-\beta)` long
(the transient from rest is then a small part of the mean rate): for :math:`T` above
:data:`THEORY_STEPS` the theory is evaluated on the first :data:`THEORY_STEPS` steps (and the
data's autocorrelation over those steps), while every measured step (the run on the sample, the
rate of :mod:`~spikeinit.init.realized` and :mod:`~spikeinit.init.recurrent`) uses all
:math:`T`. Up to :data:`THEORY_STEPS` nothing changes.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

__all__ = ["THEORY_STEPS", "leading_steps", "theory_steps"]

#: The most steps the temporal theory is evaluated over (128 = 12.8 membrane times at
#: beta = 0.9, 1.3 at beta = 0.99).
THEORY_STEPS = 128


def theory_steps(steps: int) -> int:
    """``min(steps, THEORY_STEPS)``.

    Example:
        >>> theory_steps(4), theory_steps(784)
        (4, 128)
    """
    return min(steps, THEORY_STEPS)


def leading_steps(sample: Any, steps: int) -> Any:
    """The first :func:`theory_steps` steps of a ``(T, B, ...)`` tensor sample with ``T = steps``
    (the sample itself otherwise)."""
    if isinstance(sample, Tensor) and sample.dim() >= 1 and sample.shape[0] == steps:
        return sample[:theory_steps(steps)]
    return sample
