"""nucleiseg: deep-learning nucleus segmentation and object-level evaluation.

Pure functions and models behind the CellProfiler plugins in ``plugins/`` and the
benchmark runner in ``benchmark/``. Nothing here imports CellProfiler.
"""

__version__ = "0.1.0"
