"""The metric's list-valued parameters as typed by a user: ``"0.5, 0.75"`` or ``"250 625 900"``.

EvaluateObjectF1's text settings hold both lists; ``python -m nucleiseg.evaluate --thresholds``
accepts the threshold list in the same form.  Parsed values go through the checks of
:mod:`nucleiseg.metric.parameters`, so typed and programmatic values fail alike.
"""

from __future__ import annotations

from .parameters import check_size_edges, check_thresholds


def parse_thresholds(text: str) -> tuple[float, ...]:
    """IoU thresholds from a comma- or space-separated list, e.g. ``"0.5, 0.75"``.

    Parameters
    ----------
    text : str
        The list as typed.

    Returns
    -------
    tuple of float
        The thresholds, validated by :func:`~nucleiseg.metric.parameters.check_thresholds`.

    Raises
    ------
    ValueError
        If an item is not a number or the thresholds are invalid.
    """
    return check_thresholds(_parse_numbers(text, "IoU thresholds"))


def parse_size_edges(text: str) -> tuple[float, float, float]:
    """The three size-bin edges from a comma- or space-separated list, e.g. ``"250, 625, 900"``.

    Parameters
    ----------
    text : str
        The edges as typed.

    Returns
    -------
    tuple of float
        The edges, validated by :func:`~nucleiseg.metric.parameters.check_size_edges`.

    Raises
    ------
    ValueError
        If an item is not a number, or there are not three increasing non-negative edges.
    """
    return check_size_edges(_parse_numbers(text, "size-bin edges"))


def _parse_numbers(text: str, what: str) -> list[float]:
    """Numbers of a comma- or space-separated list; ValueError naming ``what`` otherwise."""
    try:
        return [float(item) for item in text.replace(",", " ").split()]
    except ValueError:
        raise ValueError(f"{what} must be numbers separated by commas, got {text!r}") from None
