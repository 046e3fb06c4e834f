"""Cold and warm seconds of an in-process call, defined once for every speed tool.

* **cold**: the first call, including whatever it needs first (loading a model,
  building or tracing the graph for this input's shape);
* **warm**: the median of the later calls on the *same* input, each timed alone.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Timing:
    """Seconds of one call, cold and warm.

    Attributes
    ----------
    cold : float
        The first call, its preparation (``load``) included.
    calls : list of float
        Each later call on the same input.
    result : object
        What the last call returned.
    """

    cold: float
    calls: list = field(default_factory=list)
    result: object = None

    @property
    def warm(self) -> float:
        """Median of the later calls (NaN when there was none)."""
        return statistics.median(self.calls) if self.calls else math.nan

    @property
    def fastest(self) -> float:
        """The quickest later call (NaN when there was none)."""
        return min(self.calls) if self.calls else math.nan


def cold_and_warm(call: Callable, repeats: int, load: Callable | None = None, clock=time.perf_counter) -> Timing:
    """Time ``call`` once cold and ``repeats`` times warm.

    Parameters
    ----------
    call : callable
        ``call(loaded)`` does the work on one fixed input; ``loaded`` is what ``load``
        returned (None without ``load``).
    repeats : int
        Warm calls after the first (0: cold only).
    load : callable, optional
        One-off preparation counted in the cold time only (e.g. loading a model).
    clock : callable
        Seconds as a float (default :func:`time.perf_counter`).

    Returns
    -------
    Timing
    """
    started = clock()
    loaded = load() if load is not None else None
    result = call(loaded)
    timing = Timing(clock() - started)
    for _ in range(max(0, int(repeats))):
        started = clock()
        result = call(loaded)
        timing.calls.append(clock() - started)
    timing.result = result
    return timing
