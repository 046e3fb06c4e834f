"""nucleiseg_cellprofiler: the CellProfiler side of this project.

Everything that imports CellProfiler lives here or in ``plugins/``; the core
package :mod:`nucleiseg` never does. Here: the base class and help text of the
network plugins (:mod:`.module_base`, :mod:`.help_text`), the names pipelines
and modules agree on (:mod:`.names`), headless CellProfiler in this process
(:mod:`.headless`), the pipeline generator (:mod:`.pipelines`) and the tuner
of the classical pipelines (:mod:`.tune_classical`).
"""

from pathlib import Path

#: The repository this package is installed from (editable install).
REPOSITORY = Path(__file__).resolve().parent.parent
#: The CellProfiler plugins folder (one module per file, loaded by CellProfiler).
PLUGINS_DIR = REPOSITORY / "plugins"
#: Where the shipped ``.cppipe`` files live.
PIPELINES_DIR = REPOSITORY / "pipelines"
#: The same pipelines as CellProfiler 4.2.8 writes them (``--cellprofiler 4`` of the generator).
CP4_PIPELINES_DIR = PIPELINES_DIR / "cp4"
