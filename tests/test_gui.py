"""The plugins in CellProfiler's graphical interface, on a virtual X server (``make gui-test``).

Marked ``gui``: these tests need wxPython, an X server (Xvfb) and ImageMagick, so they run in
the GUI environment ``.venv-gui`` built by ``make gui-test`` and are excluded from the
default ``make test``. Artifacts (screenshots, saved figures, ``result.json``/``result.md``)
are written to ``out/gui-test/`` (or ``$GUI_TEST_OUT``).

- :func:`test_cellprofiler_gui_shows_and_runs_the_plugin` starts CellProfiler's GUI through its
  own entry point with ``pipelines/unet.cppipe``, then ``pipelines/deepcell.cppipe``, and lets ``tests/gui/gui_driver.py`` act as a
  user would (settings panel, Add modules and help, a test-mode run with display windows).
- :func:`test_display_in_cellprofiler_figure` draws every plugin's ``display()`` in
  CellProfiler's own figure window (``cellprofiler.gui.figure.Figure``, matplotlib's WXAgg
  canvas) and checks the panels and tables.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.gui

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(os.environ.get("GUI_TEST_OUT", ROOT / "out" / "gui-test"))
SCREEN = "1600x1200x24"


def _require(*programs):
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        pytest.fail(f"missing programs {missing}: run `make gui-test`, which installs them")


@pytest.fixture(scope="module")
def x_display():
    """DISPLAY of an X server: the current one, or an Xvfb started for these tests."""
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    _require("Xvfb")
    read, write = os.pipe()
    # -displayfd: Xvfb picks a free display and writes its number once it accepts clients,
    # which avoids xvfb-run's fixed-delay start and its display-number races.
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", SCREEN, "-nolisten", "tcp", "-noreset"],
        pass_fds=(write,),
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    if not number:
        server.kill()
        pytest.fail("Xvfb did not start")
    display = f":{number}"
    os.environ["DISPLAY"] = display
    yield display
    del os.environ["DISPLAY"]
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="module")
def gui_home(tmp_path_factory):
    """A HOME whose CellProfiler preferences set the plugins folder, as a user does once."""
    home = tmp_path_factory.mktemp("home")
    config = home / ".config" / "CellProfiler"
    config.mkdir(parents=True)
    # wx.FileConfig format; the telemetry entries stop the first-start consent dialog.
    (config / "CellProfilerLocal.cfg").write_text(
        f"PluginDirectoryCP4={ROOT / 'plugins'}\nTelemetry=0\nTelemetry\\ prompt=0\n"
    )
    return home


def gui_environment(home: Path, display: str) -> dict:
    env = dict(os.environ, HOME=str(home), DISPLAY=display)
    # GTK's OpenGL probe loads Mesa's libLLVM; TensorFlow's own LLVM then crashes in its static
    # initializers when the module first imports it (segmentation fault). CellProfiler's GUI
    # draws without OpenGL, so switch GTK's off.
    env["GDK_GL"] = "disable"
    return env


@pytest.mark.parametrize("pipeline, module", [("unet", "ClassifyBoundariesUNet"), ("deepcell", "ClassifyPixelsDeepCell")])
def test_cellprofiler_gui_shows_and_runs_the_plugin(x_display, gui_home, tmp_path, pipeline, module):
    _require("import", "xdotool")
    from nucleiseg.synthetic import generate

    generate(tmp_path / "data", n=2, size=256)
    out = OUT / pipeline
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    command = [
        sys.executable, str(ROOT / "tests" / "gui" / "gui_driver.py"),
        "--pipeline", str(ROOT / "pipelines" / f"{pipeline}.cppipe"),
        "--module", module,
        "--images", str(tmp_path / "data"),
        "--out", str(out),
    ]  # fmt: skip
    with open(out / "cellprofiler.log", "w") as log:
        done = subprocess.run(
            command, env=gui_environment(gui_home, x_display), stdout=log, stderr=subprocess.STDOUT, timeout=540, cwd=ROOT
        )
    log_tail = (out / "cellprofiler.log").read_text()[-3000:]
    assert (out / "result.json").exists(), f"the driver wrote no result (exit {done.returncode}):\n{log_tail}"
    result = json.loads((out / "result.json").read_text())
    failed = [c for c in result["checks"] if not c["passed"]]
    assert done.returncode == 0 and not failed, json.dumps(failed, indent=2)
    # The checks the issue asks for, by name, so that a driver that skipped them cannot pass.
    names = " ".join(c["check"] for c in result["checks"])
    for expected in (
        "main window shown",
        "ClassifyBoundariesUNet listed under Object Processing",
        "ClassifyPixelsDeepCell listed under Object Processing",
        "EvaluateObjectF1 listed under Measurement",
        f"settings panel of {module} shows every visible setting",
        "test mode ran every module of ours",
        "EvaluateObjectF1 figure",
        "no dialog opened",
    ):
        assert expected in names, f"check {expected!r} did not run"
    for shot in ("01-main-window", "02-settings-panel", "05-test-mode", f"06-figure-{module}"):
        png = out / f"{shot}.png"
        assert png.exists() and png.stat().st_size > 10_000, f"{png} missing or empty"


def test_display_in_cellprofiler_figure(x_display, gui_home, tmp_path, monkeypatch):
    """Every plugin's display() in CellProfiler's own figure window, saved as PNG."""
    monkeypatch.setenv("HOME", str(gui_home))
    monkeypatch.setenv("GDK_GL", "disable")
    # TensorFlow first: see gui_environment. The tiny hand-wired networks need it.
    import tensorflow  # noqa: F401

    import wx

    app = wx.App(False)  # noqa: F841  (CellProfiler's figure is a wx.Frame)
    import matplotlib

    matplotlib.use("WXAgg")
    import cellprofiler_core.preferences as preferences

    preferences.set_headless()  # no preferences dialogs; figure drawing does not need them
    import wx.grid
    from cellprofiler.gui.figure import Figure

    import nucleus_module_helpers as helpers
    from plugin_files import load_plugin
    from test_evaluateobjectf1_module import all_outcomes, make_module, run_all

    from cellprofiler_core.measurement import Measurements

    ClassifyBoundariesUNet = load_plugin("classifyboundariesunet").ClassifyBoundariesUNet
    ClassifyPixelsDeepCell = load_plugin("classifypixelsdeepcell").ClassifyPixelsDeepCell

    out = OUT / "figures"
    out.mkdir(parents=True, exist_ok=True)

    def show(module, workspace, name):
        figure = Figure(title=name, subplots=(1, 1))
        figure.SetSize((1200, 800))
        figure.Show()
        module.display(workspace, figure)
        figure.figure.canvas.draw()
        wx.SafeYield()
        figure.figure.savefig(out / f"{name}.png", dpi=80)
        grids = [c for c in figure.figure.canvas.GetChildren() if isinstance(c, wx.grid.Grid)]
        # CellProfiler wraps long titles onto several lines.
        titles = [" ".join(a.get_title().split()) for a in figure.figure.axes if a.get_title()]
        return figure, titles, grids

    image = helpers.synthetic_image()
    networks = {
        ClassifyBoundariesUNet: helpers.make_unet(tmp_path / "unet"),
        ClassifyPixelsDeepCell: helpers.make_deepcell(tmp_path / "deepcell"),
    }
    for module_class, card in networks.items():
        extra = {"ensemble": 1} if module_class is ClassifyPixelsDeepCell else {}
        module, pipeline = helpers.make_module(module_class, card, **extra)
        _, (workspace,) = helpers.run_images(module, pipeline, [image], show_window=True)
        figure, titles, _ = show(module, workspace, module.module_name)
        assert titles[0] == "Input image: DNA" and titles[1] == "BoundaryProbability (0 to 1)"
        assert titles[2].startswith(f"Nuclei: {len(helpers.DISCS)} objects")
        figure.Destroy()

    measurements = Measurements()
    module, pipeline = make_module()
    gt, pred = all_outcomes()
    workspace = run_all(module, pipeline, measurements, [(gt, pred)], show_window=True)[-1]
    figure, titles, grids = show(module, workspace, "EvaluateObjectF1")
    assert "missed (red)" in titles[0] and "merged (blue)" in titles[1]
    per_threshold = grids[0]
    assert per_threshold.GetNumberRows() == 10 and per_threshold.GetColLabelValue(6) == "F1"
    f1_050 = measurements.get_current_image_measurement("ObjectF1_F1_050")
    assert per_threshold.GetCellValue(0, 0) == "0.50" and per_threshold.GetCellValue(0, 6) == f"{f1_050:.3f}"
    # The table is a wx grid beside the canvas, so photograph the window as well.
    wx.SafeYield()
    subprocess.run(["import", "-window", str(figure.GetHandle()), str(out / "EvaluateObjectF1-window.png")], check=True)
    figure.Destroy()
    measurements.close()
    assert np.all([(out / f"{n}.png").stat().st_size > 10_000 for n in ("ClassifyBoundariesUNet", "EvaluateObjectF1")])
