"""Benchmark runner: headless CellProfiler pipelines scored against ground truth.

Run ``python -m benchmark --help``. The entry point of a run is
:func:`benchmark.runner.run_benchmark`; :mod:`benchmark.report` writes
``report.md`` with the plots of :mod:`benchmark.report_plots`; the speed tools
live in :mod:`benchmark.speed`.
"""
