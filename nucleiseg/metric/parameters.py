"""Parameters of the metric: IoU thresholds, size-bin edges and the merge/split IoU.

Holds their defaults and the checks every entry point runs before scoring, so that a bad setting
fails with one message however it was given (Python call, command line, CellProfiler setting).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

#: IoU thresholds of the paper: 0.50, 0.55 ... 0.95.
DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
#: Area edges (pixels) between the tiny / small / normal / large bins.
DEFAULT_SIZE_EDGES: tuple[float, float, float] = (250.0, 625.0, 900.0)
#: Names of the four size bins, smallest first.
SIZE_BINS: tuple[str, str, str, str] = ("tiny", "small", "normal", "large")
#: Minimum IoU for an overlap to count towards a merge or a split.
DEFAULT_MERGE_IOU = 0.1
#: Fixed thresholds of the single-threshold figures (``mean_iou_050``, ``error_rate_070``).
MEAN_IOU_THRESHOLD = 0.5
MISSED_THRESHOLD = 0.7


def threshold_key(threshold: float) -> str:
    """Three-digit suffix naming a threshold in flat keys, e.g. ``0.5 -> "050"``.

    Parameters
    ----------
    threshold : float
        IoU threshold with at most two decimals.

    Returns
    -------
    str
        ``round(100 * threshold)`` zero-padded to three digits.

    Raises
    ------
    ValueError
        If the threshold has more than two decimals (two thresholds would share a name).
    """
    hundredths = round(float(threshold) * 100)
    if abs(float(threshold) * 100 - hundredths) > 1e-6:
        raise ValueError(f"IoU threshold {threshold!r} must have at most two decimals (it names the measurement)")
    return f"{hundredths:03d}"


def check_thresholds(thresholds: Iterable[float]) -> tuple[float, ...]:
    """Validate IoU thresholds and return them as a tuple of floats.

    Parameters
    ----------
    thresholds : iterable of float
        Thresholds in [0.5, 1.0] with at most two decimals, no duplicates.

    Returns
    -------
    tuple of float
        The thresholds in the given order.

    Raises
    ------
    ValueError
        If the list is empty, a value is below 0.5 (matching would no longer be one-to-one and
        would need an assignment solver), above 1, not finite, has more than two decimals, or
        appears twice.
    """
    values = tuple(float(t) for t in thresholds)
    if not values:
        raise ValueError("at least one IoU threshold is needed")
    for t in values:
        if not np.isfinite(t):
            raise ValueError(f"IoU threshold {t!r} is not a finite number")
        if t < 0.5:
            raise ValueError(
                f"IoU threshold {t:g} is below 0.5: matching is one-to-one only for thresholds >= 0.5, "
                "and this metric does not run an assignment solver"
            )
        if t > 1.0:
            raise ValueError(f"IoU threshold {t:g} is above 1 (IoU never exceeds 1)")
    keys = [threshold_key(t) for t in values]
    if len(set(keys)) != len(keys):
        raise ValueError(f"IoU thresholds must be distinct, got {', '.join(f'{t:g}' for t in values)}")
    return values


def check_size_edges(edges: Iterable[float]) -> tuple[float, float, float]:
    """Validate the three area edges between the tiny / small / normal / large bins.

    Parameters
    ----------
    edges : iterable of float
        Three strictly increasing, non-negative areas in pixels.

    Returns
    -------
    tuple of float
        The edges.

    Raises
    ------
    ValueError
        If there are not exactly three increasing non-negative finite edges.
    """
    values = tuple(float(e) for e in edges)
    if len(values) != 3:
        raise ValueError(f"exactly three size-bin edges are needed (tiny|small|normal|large), got {len(values)}")
    if not all(np.isfinite(values)) or values[0] < 0 or not values[0] < values[1] < values[2]:
        raise ValueError(f"size-bin edges must be non-negative and strictly increasing, got {values}")
    return values  # type: ignore[return-value]


def check_merge_iou(merge_iou: float) -> float:
    """Validate the minimum IoU of an overlap that counts towards merges and splits.

    Parameters
    ----------
    merge_iou : float
        A value in (0, 1].

    Returns
    -------
    float
        The value.

    Raises
    ------
    ValueError
        If it is outside (0, 1].
    """
    value = float(merge_iou)
    if not (0.0 < value <= 1.0):
        raise ValueError(f"merge/split IoU must lie in (0, 1], got {merge_iou!r}")
    return value
