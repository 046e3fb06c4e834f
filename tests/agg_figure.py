"""An off-screen figure for testing the plugins' ``display()`` without wxPython.

CellProfiler's own figure (``cellprofiler.gui.figure.Figure``) is a ``wx.Frame`` and cannot be
created without wxPython and a display; ``make gui-test`` exercises it under Xvfb
(``tests/test_gui.py``). For the default test run, :class:`AggFigure` takes the same calls
(``set_subplots``, ``subplot``, ``subplot_imshow_grayscale``, ``subplot_imshow_color``,
``subplot_table``), with CellProfiler's argument names and defaults, and draws them on a
matplotlib figure with the Agg backend, so a test can check what each panel shows and save
a PNG.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.gridspec import GridSpec

#: Outline colour of ``cplabels`` (CellProfiler's default primary outline colour is red).
OUTLINE_RGB = (1.0, 0.0, 0.0)


class AggFigure:
    """Matplotlib Agg figure taking the calls CellProfiler's figure takes.

    Attributes
    ----------
    figure : matplotlib.figure.Figure
        The drawing, with an Agg canvas.
    shown : dict
        ``(x, y)`` -> RGB array (floats in 0..1) of what each image panel shows, outlines
        included.
    tables : dict
        ``(x, y)`` -> ``(col_labels, rows)`` of each table, cells as strings.
    """

    def __init__(self, size=(12.0, 8.0)):
        self.figure = Figure(figsize=size)
        FigureCanvasAgg(self.figure)
        self.subplots = None
        self.shown = {}
        self.tables = {}

    def set_subplots(self, subplots, dimensions=2):
        self.figure.clf()
        self.subplots = np.zeros(subplots, dtype=object)
        self._grid = GridSpec(subplots[1], subplots[0], figure=self.figure)

    def subplot(self, x, y, sharex=None, sharey=None):
        if not self.subplots[x, y]:
            self.subplots[x, y] = self.figure.add_subplot(self._grid[y, x], sharex=sharex, sharey=sharey)
        return self.subplots[x, y]

    def subplot_imshow(
        self, x, y, image, title=None, colormap=None, normalize=None, vmin=0, vmax=1, cplabels=None, sharexy=None, **kwargs
    ):
        """Draw ``image``; like CellProfiler, ``normalize`` (default for greyscale) stretches it to 0..1."""
        from matplotlib import colormaps
        from skimage.segmentation import find_boundaries

        axes = self.subplot(x, y, sharex=sharexy, sharey=sharexy)
        image = np.asarray(image, dtype=np.float64)
        if image.ndim == 2:
            if normalize is None or normalize:
                low, high = float(image.min()), float(image.max())
            else:
                low, high = float(vmin), float(vmax)
            scaled = np.clip((image - low) / (high - low), 0, 1) if high > low else np.zeros_like(image)
            rgb = colormaps[colormap or "gray"](scaled)[..., :3]
        else:
            rgb = np.clip(image[..., :3], 0, 1)
        for entry in cplabels or []:
            for labels in entry["labels"]:
                rgb[find_boundaries(labels, mode="inner")] = OUTLINE_RGB
        axes.imshow(rgb, interpolation="nearest")
        axes.set_axis_off()
        if title is not None:
            axes.set_title(title, fontsize=8)
        self.shown[(x, y)] = rgb
        return axes

    def subplot_imshow_grayscale(self, x, y, image, title=None, **kwargs):
        return self.subplot_imshow(x, y, image, title=title, **{**kwargs, "colormap": "gray"})

    def subplot_imshow_color(self, x, y, image, title=None, normalize=False, **kwargs):
        return self.subplot_imshow(x, y, image, title=title, normalize=normalize, **kwargs)

    def subplot_table(self, x, y, statistics, col_labels=None, row_labels=None, title=None, **kwargs):
        axes = self.subplot(x, y)
        axes.set_axis_off()
        rows = [[str(value) for value in row] for row in statistics]
        axes.table(cellText=rows, colLabels=col_labels, rowLabels=row_labels, loc="center")
        if title is not None:
            axes.set_title(title, fontsize=8)
        self.tables[(x, y)] = (list(col_labels) if col_labels is not None else None, rows)
        return axes

    def save(self, path: Path) -> Path:
        """Render to a PNG file and return its path."""
        self.figure.savefig(path, dpi=80)
        return Path(path)
