"""Cold and warm seconds of an in-process call, defined once for every speed tool.

* **cold**: the first call, including whatever it needs first (loading a model,
  building or tracing the graph for this input's shape);
* **warm**: the median of the later calls on the *same* input, each timed alone.

:func:`side_by_side` times several calls so (e.g. two inference engines), their warm
calls taken in turns, so that a change in the machine's load falls on each alike.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping


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
    return side_by_side({"call": call}, repeats, None if load is None else {"call": load}, clock)["call"]


def side_by_side(calls: Mapping[str, Callable], repeats: int, loads: Mapping[str, Callable] | None = None,
                 clock=time.perf_counter) -> dict[str, Timing]:
    """:func:`cold_and_warm` of several calls, their warm calls taken in turns.

    Parameters
    ----------
    calls : mapping of str to callable
        ``calls[name](loaded)`` does one thing to compare on the fixed input.
    repeats : int
        Warm calls of each (0: cold only).
    loads : mapping of str to callable, optional
        One-off preparation of each call, counted in its cold time only.
    clock : callable
        Seconds as a float.

    Returns
    -------
    dict of str to Timing
        By the names of ``calls``, in their order: every cold call first, in that order,
        then rounds of one warm call of each.
    """
    loads = loads or {}
    timings, loaded = {}, {}
    for name, call in calls.items():
        started = clock()
        loaded[name] = loads[name]() if name in loads else None
        result = call(loaded[name])
        timings[name] = Timing(clock() - started, result=result)
    for _ in range(max(0, int(repeats))):
        for name, call in calls.items():
            started = clock()
            timings[name].result = call(loaded[name])
            timings[name].calls.append(clock() - started)
    return timings
