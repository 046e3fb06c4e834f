"""The plugins of ``plugins/``, imported from their files under the names CellProfiler gives them.

CellProfiler's plugin loader imports ``plugins/<name>.py`` as the top-level module
``name``; importing it here under the same name means a test and a pipeline built in the
same process (whose loader finds the module already imported) share one module and one
class.
"""

from __future__ import annotations

import importlib.util
import sys

from nucleiseg_cellprofiler import PLUGINS_DIR


def load_plugin(name: str):
    """The module of ``plugins/<name>.py``, imported once per process."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, PLUGINS_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
