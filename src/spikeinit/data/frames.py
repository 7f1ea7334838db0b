"""Binning event streams ``(x, y, t, p)`` into frames."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from spikeinit.errors import InvalidArgumentError

from .validation import check_positive_int

__all__ = ["events_to_frames"]


def events_to_frames(
    events: np.ndarray, n_frames: int, sensor_size: Sequence[int] = (34, 34, 2)
) -> np.ndarray:
    """Count events per pixel in ``n_frames`` equal time bins.

    The recording's time span ``[t_min, t_max]`` (integer microseconds, inclusive) is split
    into ``n_frames`` bins of equal width ``(t_max - t_min + 1) / n_frames``; event ``i`` goes
    to bin ``floor((t_i - t_min) * n_frames / (t_max - t_min + 1))``, so every event is counted
    exactly once and the first and last events fall in the first and last bins.

    Args:
        events: structured array with integer fields ``x``, ``y``, ``t``, ``p`` (as returned by
            :func:`~spikeinit.data.read_nmnist_bin` or ``tonic``); need not be time-sorted.
        n_frames: number of time bins ``T`` (>= 1).
        sensor_size: ``(width, height, polarities)`` as in tonic; with 1 polarity channel
            both polarities are summed into it.

    Returns:
        float32 array ``(T, polarities, height, width)`` of event counts.

    Raises:
        ValueError: bad ``n_frames``/``sensor_size``, missing fields, or events outside the
            sensor (x >= width, y >= height, p >= polarities when polarities > 1, negatives).

    Example:
        Three events on a 2 x 2 sensor with two polarities, over 0..99 us, in 2 frames:

        >>> import numpy as np
        >>> from spikeinit.data import EVENT_DTYPE
        >>> events = np.array([(0, 0, 0, 1), (1, 1, 60, 0), (1, 1, 99, 0)], dtype=EVENT_DTYPE)
        >>> frames = events_to_frames(events, 2, sensor_size=(2, 2, 2))
        >>> frames.shape, float(frames[0, 1, 0, 0]), float(frames[1, 0, 1, 1])
        ((2, 2, 2, 2), 1.0, 2.0)
    """
    n_frames = check_positive_int("n_frames", n_frames)
    if len(sensor_size) != 3:
        raise InvalidArgumentError(
            f"sensor_size must be (width, height, polarities), got {sensor_size!r}")
    width, height, n_pol = (check_positive_int("sensor_size entry", s) for s in sensor_size)
    names = getattr(getattr(events, "dtype", None), "names", None) or ()
    missing = [f for f in ("x", "y", "t", "p") if f not in names]
    if missing:
        raise InvalidArgumentError(
            f"events must be a structured array with fields x, y, t, p; lacks {missing}"
        )
    frames = np.zeros((n_frames, n_pol, height, width), dtype=np.float32)
    if events.size == 0:
        return frames
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    t = events["t"].astype(np.int64)
    p = events["p"].astype(np.int64) if n_pol > 1 else np.zeros(events.size, np.int64)
    for name, values, bound in (("x", x, width), ("y", y, height), ("p", p, n_pol)):
        if values.min() < 0 or values.max() >= bound:
            raise InvalidArgumentError(
                f"event {name} values span {values.min()}..{values.max()}, outside the sensor "
                f"range 0..{bound - 1} (sensor_size={tuple(sensor_size)})"
            )
    t0 = t.min()
    span = int(t.max() - t0) + 1
    bins = (t - t0) * n_frames // span
    flat = ((bins * n_pol + p) * height + y) * width + x
    counts = np.bincount(flat, minlength=frames.size)
    return counts.astype(np.float32).reshape(frames.shape)
