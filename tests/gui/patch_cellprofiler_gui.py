"""Make CellProfiler 5's GUI lay out its controls with wxPython 4.2.0 (Debian's ``python3-wxgtk4.0``).

CellProfiler computes some control positions and sizes with ``/`` and passes the resulting
floats to ``wx.Point`` / ``wx.Size``; wxPython 4.2.0 on Python 3.11 refuses floats there
(``TypeError``). Two places matter:

- ``cellprofiler/gui/module_view/_module_sizer.py`` (four lines): the sizer's ``except``
  swallows the error and every module's settings panel is drawn with all its controls on top
  of each other;
- ``cellprofiler/gui/figure/_figure.py``, ``align_widget`` (two lines): every display window
  with a table (``subplot_table``, e.g. EvaluateObjectF1's) fails with the TypeError.

Casting the computed values to ``int`` fixes both. Newer wxPython builds (CellProfiler's own
installers) are not affected.

Usage, with the Python that runs CellProfiler's GUI::

    python tests/gui/patch_cellprofiler_gui.py          # patch (idempotent)
    python tests/gui/patch_cellprofiler_gui.py --check  # exit 1 if not patched

The files are found without importing wx. Exit status 2 means a file does not have the
expected lines (another CellProfiler version): check it by hand rather than patching blindly.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

MARKER = "# nucleiseg: int() for wxPython 4.2"

# File (inside the cellprofiler package) -> (original line, patched line), stripped of indentation.
REPLACEMENTS = {
    "gui/module_view/_module_sizer.py": [
        (
            "text_width - third_width / 2, height + border + item_height / 2",
            "int(text_width - third_width / 2), int(height + border + item_height / 2)",
        ),
        (
            "item_size = wx.Size(third_width, edit_item.GetSize()[1])",
            "item_size = wx.Size(int(third_width), int(edit_item.GetSize()[1]))",
        ),
        (
            "item_size = wx.Size(widths[j], item.CalcMin()[1])",
            "item_size = wx.Size(int(widths[j]), int(item.CalcMin()[1]))",
        ),
        (
            "item_location = wx.Point(item_x, item_y)",
            "item_location = wx.Point(int(item_x), int(item_y))",
        ),
    ],
    "gui/figure/_figure.py": [
        ("ctrl.SetPosition(wx.Point(x, y))", "ctrl.SetPosition(wx.Point(int(x), int(y)))"),
        ("ctrl.SetSize(wx.Size(width, height))", "ctrl.SetSize(wx.Size(int(width), int(height)))"),
    ],
}


def cellprofiler_folder() -> Path:
    """Folder of the ``cellprofiler`` package this Python imports.

    Raises
    ------
    SystemExit
        If CellProfiler (the GUI package ``cellprofiler``) is not installed.
    """
    spec = importlib.util.find_spec("cellprofiler")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{sys.executable}: the 'cellprofiler' package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def patch(text: str, replacements: list[tuple[str, str]]) -> tuple[str, int]:
    """Patched source and the number of lines changed (0 when already patched).

    Raises
    ------
    ValueError
        If a line to patch is neither in its original nor in its patched form.
    """
    lines = text.splitlines(keepends=True)
    changed = 0
    for original, patched in replacements:
        hits = [i for i, line in enumerate(lines) if line.strip() == original]
        done = [i for i, line in enumerate(lines) if line.strip().startswith(patched)]
        if len(hits) == 1:
            i = hits[0]
            indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
            lines[i] = f"{indent}{patched}  {MARKER}\n"
            changed += 1
        elif not (len(hits) == 0 and len(done) == 1):
            raise ValueError(f"expected exactly one line {original!r} (or its patched form); found {len(hits)}")
    return "".join(lines), changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only report; exit 1 if a file is not patched")
    parser.add_argument("--root", type=Path, help="the cellprofiler package folder (default: the installed one)")
    args = parser.parse_args(argv)
    root = args.root or cellprofiler_folder()
    unpatched = 0
    for relative, replacements in REPLACEMENTS.items():
        path = root / relative
        try:
            text, changed = patch(path.read_text(), replacements)
        except (OSError, ValueError) as error:
            print(f"{path}: {error}; this CellProfiler version needs a different fix", file=sys.stderr)
            return 2
        unpatched += bool(changed)
        if args.check:
            print(f"{path}: {'not patched' if changed else 'patched'}")
        elif changed:
            path.write_text(text)
            print(f"{path}: {changed} line(s) patched")
        else:
            print(f"{path}: already patched")
    return 1 if args.check and unpatched else 0


if __name__ == "__main__":
    sys.exit(main())
