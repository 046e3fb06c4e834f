"""The split between the pure core and the CellProfiler side holds: nucleiseg never imports CellProfiler."""

from __future__ import annotations

import json
import subprocess
import sys

# Imports every module of a package (found by file, commands excepted), one after the other, and
# names each module after whose import a new cellprofiler* module was loaded.
PROBE = r"""
import importlib, importlib.util, json, sys
from pathlib import Path

def cellprofiler_loaded():
    return {name for name in sys.modules if name.split(".")[0].startswith("cellprofiler")}

def import_all(package):
    root = Path(importlib.util.find_spec(package).submodule_search_locations[0])
    names = sorted(
        ".".join((package, *path.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
        for path in root.rglob("*.py")
        if path.stem != "__main__"  # a command: importing it runs it
    )
    culprits = {}
    for name in names:
        before = cellprofiler_loaded()
        importlib.import_module(name)
        new = cellprofiler_loaded() - before
        if new:
            culprits[name] = sorted(new)[:3]
    return names, culprits

core, core_culprits = import_all("nucleiseg")
# The same probe must see CellProfiler where it is imported, or an empty result proves nothing.
_, side_culprits = import_all("nucleiseg_cellprofiler")
print(json.dumps({"core": core, "core_culprits": core_culprits, "side_culprits": side_culprits}))
"""


def test_no_module_of_nucleiseg_imports_cellprofiler():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"nucleiseg", "nucleiseg.inference", "nucleiseg.model_types.deepcell", "nucleiseg.metric", "nucleiseg.layouts"} <= set(found["core"])
    assert found["core_culprits"] == {}, f"modules of nucleiseg that import CellProfiler: {found['core_culprits']}"
    assert "nucleiseg_cellprofiler.module_base" in found["side_culprits"]
