"""Benchmark runner: headless CellProfiler pipelines scored against ground truth.

Run ``python -m benchmark run --help``. The work is done by
:func:`benchmark.runner.run_benchmark`; :mod:`benchmark.report` writes
``report.md`` and its plots.
"""
