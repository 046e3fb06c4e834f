"""Drive CellProfiler's graphical interface as a user would and record what it shows.

Run with the Python of the GUI environment (``.venv-gui``, see ``make gui-test``) on an X
display (Xvfb)::

    python tests/gui/gui_driver.py --pipeline pipelines/unet.cppipe --module ClassifyBoundariesUNet \
        --images IMAGE_FOLDER --out out/gui-test

CellProfiler is started through its own entry point (``cellprofiler.__main__.main``) with the
pipeline, ``-i IMAGE_FOLDER`` and ``-e imageio_reader``; the plugins folder comes from the
preferences file, as for a user (``PluginDirectoryCP4`` in
``$HOME/.config/CellProfiler/CellProfilerLocal.cfg``; the caller points HOME at a temporary
folder). Once the main window is up, timers walk through what a user does:

#. look at the pipeline: the module is listed, without a validation error;
#. select the module: its settings panel shows every visible setting; switch *Model* to a
   custom file and back, and the model-file setting appears and disappears;
#. open *Add modules*: each plugin is listed under its category and *Module Help* opens its
   full help;
#. turn on the module windows (the "eye") and step through one image set in test mode; the
   modules' figure windows are inspected (panel titles, table cells) and saved.

Screenshots of the whole X screen (ImageMagick ``import -window root``) are taken at each
stage. A watchdog closes and records any dialog that opens (an error dialog fails the run).
``result.json`` and ``result.md`` in ``--out`` list every check; the exit status is 0 only if
all passed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path

# Where each plugin is expected in Add modules.
CATEGORIES = {
    "ClassifyBoundariesUNet": "Object Processing",
    "ClassifyPixelsDeepCell": "Object Processing",
    "EvaluateObjectF1": "Measurement",
}
# Words that the help of every plugin must contain (besides each setting's text).
HELP_SECTIONS = ("Recommended pipelines", "References", "Caicedo", "What the display window shows")
STEP_PAUSE_MS = 1500  # lets the window paint before the next step or screenshot


class Driver:
    """Walks the GUI through the checks, one timer step at a time."""

    def __init__(self, app, args):
        import wx

        self.wx = wx
        self.app = app
        self.args = args
        self.out = Path(args.out)
        self.checks: list[dict] = []
        self.dialogs: list[dict] = []
        self.screenshots: list[str] = []
        self.figures: dict = {}
        self.started = time.monotonic()
        self.frame = app.frame
        self.controller = self.frame.get_pipeline_controller()
        self.pipeline = self.frame.get_pipeline()
        self.steps = [
            self.step_main_window,
            self.step_select_module,
            self.step_toggle_custom_model,
            self.step_toggle_back,
            self.step_check_toggled_back,
            self.step_open_add_modules,
            *[step for name in CATEGORIES for step in self.add_module_steps(name)],
            self.step_close_add_modules,
            self.step_start_test_mode,
            self.step_run_test_mode,
            self.step_inspect_figures,
        ]
        self.watchdog = wx.Timer()
        self.watchdog.Bind(wx.EVT_TIMER, self.on_watchdog)
        self.watchdog.Start(500)
        wx.CallLater(STEP_PAUSE_MS, self.next_step)

    # ---- bookkeeping -----------------------------------------------------------------------

    def check(self, name: str, passed: bool, detail: str = "") -> bool:
        self.checks.append({"check": name, "passed": bool(passed), "detail": detail})
        print(f"[gui-driver] {'PASS' if passed else 'FAIL'} {name} {detail}", flush=True)
        return passed

    def screenshot(self, name: str, window=None) -> None:
        """Save what the X server shows (the whole screen, or one window) to ``out/name.png``."""
        self.wx.SafeYield()
        target = "root" if window is None else str(window.GetHandle())
        path = self.out / f"{name}.png"
        done = subprocess.run(["import", "-window", target, str(path)], capture_output=True, text=True)
        if done.returncode == 0:
            self.screenshots.append(path.name)
        else:
            self.check(f"screenshot {name}", False, done.stderr.strip())

    def next_step(self) -> None:
        if not self.steps:
            self.finish()
            return
        step = self.steps.pop(0)
        try:
            step()
        except Exception:
            self.check(step.__name__, False, traceback.format_exc(limit=4))
            self.screenshot(f"failed-{step.__name__}")
        self.wx.CallLater(STEP_PAUSE_MS, self.next_step)

    def on_watchdog(self, event) -> None:
        """Record, photograph and close any dialog: none is expected during these steps."""
        wx = self.wx
        for window in wx.GetTopLevelWindows():
            if not isinstance(window, wx.Dialog) or not window.IsShown() or isinstance(window, wx.GenericProgressDialog):
                continue
            texts = [c.GetLabel() for c in _descendants(window) if isinstance(c, (wx.StaticText, wx.TextCtrl))]
            record = {"title": window.GetTitle(), "text": " | ".join(t for t in texts if t)[:2000]}
            self.dialogs.append(record)
            print(f"[gui-driver] dialog opened: {record}", flush=True)
            self.screenshot(f"dialog-{len(self.dialogs)}")
            if window.IsModal():
                window.EndModal(wx.ID_CANCEL)
            else:
                window.Destroy()

    def finish(self) -> None:
        self.watchdog.Stop()
        self.check("no dialog opened (error, warning or other)", not self.dialogs, json.dumps(self.dialogs))
        visible = _visible_x_windows()
        self.check(
            "no X window named like an error",
            not any(re.search(r"error|exception|warning", name, re.I) for name in visible),
            ", ".join(visible),
        )
        result = {
            "passed": all(c["passed"] for c in self.checks),
            "seconds": round(time.monotonic() - self.started, 1),
            "pipeline": self.args.pipeline,
            "module": self.args.module,
            "checks": self.checks,
            "dialogs": self.dialogs,
            "visible_windows": visible,
            "figures": self.figures,
            "screenshots": self.screenshots,
        }
        (self.out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
        (self.out / "result.md").write_text(_markdown(result))
        sys.stdout.flush()
        # Closing the main window would ask whether to save the changed pipeline; the checks
        # are done and written, so leave without CellProfiler's shutdown dialogs.
        os._exit(0 if result["passed"] else 1)

    # ---- helpers ---------------------------------------------------------------------------

    def our_module(self):
        (module,) = [m for m in self.pipeline.modules() if m.module_name == self.args.module]
        return module

    def settings_panel_texts(self) -> list[str]:
        panel = self.frame.get_module_view().get_module_panel()
        return [c.GetLabel() for c in _descendants(panel) if isinstance(c, self.wx.StaticText) and c.IsShown()]

    def set_choice(self, setting, value: str) -> None:
        """Pick ``value`` in the setting's drop-down as a user does (the control fires EVT_COMBOBOX)."""
        from cellprofiler.gui.utilities.module_view import edit_control_name

        panel = self.frame.get_module_view().get_module_panel()
        control = self.wx.FindWindowByName(edit_control_name(setting), panel)
        assert control is not None, f"no control for setting {setting.text!r}"
        control.SetValue(value)
        event = self.wx.CommandEvent(self.wx.wxEVT_COMBOBOX, control.GetId())
        event.SetEventObject(control)
        event.SetString(value)
        control.GetEventHandler().ProcessEvent(event)

    # ---- steps -----------------------------------------------------------------------------

    def step_main_window(self):
        self.frame.SetSize((1400, 1000))  # room for the settings panel in the screenshots
        self.wx.SafeYield()
        self.check("main window shown", self.frame.IsShownOnScreen(), self.frame.GetTitle())
        names = [m.module_name for m in self.pipeline.modules()]
        self.check(f"pipeline lists {self.args.module}", self.args.module in names, ", ".join(names))
        items = self.frame.get_pipeline_list_view().list_ctrl.items
        shown = {item.module.module_name: item.get_error_state() for item in items}
        from cellprofiler.gui.pipelinelistview import ERROR

        self.check(
            f"{self.args.module} shown in the pipeline list without a validation error",
            self.args.module in shown and shown[self.args.module] != ERROR,
            str(shown.get(self.args.module)),
        )
        files = self.pipeline.file_list
        self.check("input images in the file list", len(files) > 0, f"{len(files)} files")
        self.screenshot("01-main-window")

    def step_select_module(self):
        module = self.our_module()
        self.frame.get_pipeline_list_view().select_one_module(module.module_num)
        self.wx.SafeYield()
        texts = self.settings_panel_texts()
        expected = [s.text for s in module.visible_settings()]
        missing = [t for t in expected if not any(t.replace("\n", " ") in x.replace("\n", " ") for x in texts)]
        self.check(f"settings panel of {self.args.module} shows every visible setting", not missing, f"missing: {missing}")
        current = self.frame.get_module_view().get_current_module()
        self.check("module view shows the selected module", current is module, getattr(current, "module_name", ""))
        self.screenshot("02-settings-panel")

    def step_toggle_custom_model(self):
        module = self.our_module()
        if not hasattr(module, "model_choice"):
            return
        self.set_choice(module.model_choice, "Custom model file")

    def step_toggle_back(self):
        module = self.our_module()
        if not hasattr(module, "model_choice"):
            return
        texts = self.settings_panel_texts()
        self.check(
            "choosing 'Custom model file' shows the 'Model card file' setting",
            module.model_choice.value == "Custom model file" and any("Model card file" in t for t in texts),
        )
        self.screenshot("03-settings-custom-model")
        self.set_choice(module.model_choice, "Shipped default")

    def step_check_toggled_back(self):
        # The panel is rebuilt after the change event, so look one step later.
        if not hasattr(self.our_module(), "model_choice"):
            return
        self.check(
            "choosing 'Shipped default' hides it again",
            not any("Model card file" in t for t in self.settings_panel_texts()),
        )

    def add_modules_frame(self):
        frames = [w for w in self.wx.GetTopLevelWindows() if w.GetTitle() == "Add modules"]
        assert frames, "the Add modules window is not open"
        return frames[0]

    def step_open_add_modules(self):
        self.controller.open_add_modules()
        self.wx.SafeYield()
        self.check("Add modules window open", self.add_modules_frame().IsShownOnScreen())

    def add_module_steps(self, name: str):
        """Steps: pick the category and the module in Add modules, then press Module Help and read it."""
        category = CATEGORIES[name]

        def pick():
            frame = self.add_modules_frame()
            categories, modules = [c for c in _descendants(frame) if isinstance(c, self.wx.ListBox)]
            self.check(f"Add modules has category {category}", categories.FindString(category) != self.wx.NOT_FOUND)
            categories.SetStringSelection(category)
            event = self.wx.CommandEvent(self.wx.wxEVT_LISTBOX, categories.GetId())
            event.SetEventObject(categories)
            event.SetInt(categories.GetSelection())
            categories.GetEventHandler().ProcessEvent(event)
            # CellProfiler marks plugins with a puzzle-piece emoji before the name.
            listed = {item.split(" ")[-1]: item for item in modules.GetItems()}
            if not self.check(f"{name} listed under {category}", name in listed, ", ".join(listed.values())):
                return
            modules.SetStringSelection(listed[name])
            (help_button,) = [c for c in _descendants(frame) if isinstance(c, self.wx.Button) and "Module Help" in c.GetLabel()]
            click = self.wx.CommandEvent(self.wx.wxEVT_BUTTON, help_button.GetId())
            click.SetEventObject(help_button)
            help_button.GetEventHandler().ProcessEvent(click)

        def read_help():
            import wx.html

            title = f'Help for module, "{name}"'
            frames = [w for w in self.wx.GetTopLevelWindows() if w.GetTitle() == title and w.IsShown()]
            if not self.check(f"help window of {name} open", bool(frames)):
                return
            frame = frames[-1]
            frame.SetSize((900, 1000))
            frame.Raise()
            (html,) = [c for c in _descendants(frame) if isinstance(c, wx.html.HtmlWindow)]
            text = " ".join(html.ToText().split())
            module = _instantiate(name)
            missing = [s for s in HELP_SECTIONS if s not in text]
            missing += [s.text for s in module.settings() if " ".join(s.text.split()) not in text]
            self.check(f"help of {name} has its sections, the paper and every setting", not missing, f"missing: {missing}")
            self.screenshot(f"04-add-modules-help-{name}")
            frame.Destroy()

        pick.__name__ = f"step_add_modules_pick_{name}"
        read_help.__name__ = f"step_add_modules_help_{name}"
        return [pick, read_help]

    def step_close_add_modules(self):
        self.add_modules_frame().Hide()

    def step_start_test_mode(self):
        # The "eye" of each module of ours: open its display window when it runs.
        for module in self.pipeline.modules():
            if module.module_name in CATEGORIES:
                module.show_window = True
        self.frame.get_pipeline_list_view().list_ctrl.Refresh()
        self.controller.on_debug_start(None)
        self.check("test mode started", self.controller.is_in_debug_mode())

    def step_run_test_mode(self):
        """Step module by module through the first image set, up to our last module."""
        last = max(m.module_num for m in self.pipeline.modules() if m.module_name in CATEGORIES)
        stepped = []
        while True:
            module = self.controller.current_debug_module()
            if module is None or module.module_num > last:
                break
            before = module.module_num
            self.controller.on_debug_step(None)
            self.wx.SafeYield()
            stepped.append(module.module_name)
            after = self.controller.current_debug_module()
            if after is None or after.module_num == before:
                break  # the step failed: CellProfiler stays on the module
        self.check("test mode ran every module of ours on image set 1", all(n in stepped for n in self._ours()), ", ".join(stepped))
        self.screenshot("05-test-mode")

    def _ours(self):
        return [m.module_name for m in self.pipeline.modules() if m.module_name in CATEGORIES]

    def step_inspect_figures(self):
        import wx.grid
        from cellprofiler.gui.figure import Figure

        measurements = self.controller._PipelineController__debug_measurements
        figures = [w for w in self.wx.GetTopLevelWindows() if isinstance(w, Figure) and w.IsShown()]
        for figure in figures:
            name = figure.GetTitle().split(" #")[0]
            # Resizing would leave the table widgets to be re-aligned later; keep CellProfiler's size.
            figure.Raise()
            figure.figure.canvas.draw()
            self.wx.SafeYield()
            grids = [c for c in _descendants(figure) if isinstance(c, wx.grid.Grid)]
            tables = [
                [[grid.GetColLabelValue(j) for j in range(grid.GetNumberCols())]]
                + [[grid.GetCellValue(i, j) for j in range(grid.GetNumberCols())] for i in range(grid.GetNumberRows())]
                for grid in grids
            ]
            self.figures[name] = {
                "title": figure.GetTitle(),
                # CellProfiler wraps long titles onto several lines.
                "axes_titles": [" ".join(a.get_title().split()) for a in figure.figure.axes if a.get_title()],
                "tables": tables,
            }
            figure.figure.savefig(self.out / f"figure-{name}.png", dpi=80)
            self.screenshot(f"06-figure-{name}")
        for name in self._ours():
            self.check(f"{name} opened its display window", name in self.figures)
        for name, seen in self.figures.items():
            titles = seen["axes_titles"]
            if name in ("ClassifyBoundariesUNet", "ClassifyPixelsDeepCell"):
                count = int(measurements["Image", "Count_Nuclei"])
                self.check(
                    f"{name} figure: input, boundary probability and outlines of the {count} nuclei",
                    len(titles) == 3
                    and titles[0].startswith("Input image")
                    and "Boundary" in titles[1]
                    and f": {count} objects" in titles[2],
                    " / ".join(titles),
                )
            elif name == "EvaluateObjectF1":
                per_threshold = next((t for t in seen["tables"] if t[0][:1] == ["IoU"]), None)
                f1_050 = measurements["Image", "ObjectF1_F1_050"]
                row = per_threshold[1] if per_threshold else []
                self.check(
                    "EvaluateObjectF1 figure: outcome colours and F1-by-threshold table matching the measurements",
                    len(titles) == 2
                    and "missed (red)" in titles[0]
                    and "merged (blue)" in titles[1]
                    and per_threshold is not None
                    and len(per_threshold) == 11
                    and row[0] == "0.50"
                    and row[-1] == f"{f1_050:.3f}",
                    f"titles {titles}; first row {row}; ObjectF1_F1_050 = {f1_050}",
                )


def _descendants(window):
    for child in window.GetChildren():
        yield child
        yield from _descendants(child)


def _instantiate(name: str):
    from cellprofiler_core.utilities.core.modules import instantiate_module

    return instantiate_module(name)


def _visible_x_windows() -> list[str]:
    """Names of the viewable X windows that have a name (independent of wx's own bookkeeping)."""
    found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", "."], capture_output=True, text=True)
    names = []
    for xid in found.stdout.split():
        name = subprocess.run(["xdotool", "getwindowname", xid], capture_output=True, text=True).stdout.strip()
        if name and name not in names:
            names.append(name)
    return names


def _markdown(result: dict) -> str:
    lines = [
        f"# CellProfiler GUI test: {'PASSED' if result['passed'] else 'FAILED'}",
        "",
        f"Pipeline `{result['pipeline']}`, module **{result['module']}**, {result['seconds']} s after the main window opened.",
        "",
        "| check | result | detail |",
        "| --- | --- | --- |",
    ]
    for c in result["checks"]:
        detail = c["detail"].replace("|", "/").replace("\n", " ")[:300]
        lines.append(f"| {c['check']} | {'pass' if c['passed'] else '**FAIL**'} | {detail} |")
    lines += ["", "Screenshots: " + ", ".join(f"`{s}`" for s in result["screenshots"]), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pipeline", required=True, help="pipeline file to load (.cppipe)")
    parser.add_argument("--module", required=True, help="our module in it whose settings and test run are shown")
    parser.add_argument("--images", required=True, help="folder added to the file list (-i)")
    parser.add_argument("--out", required=True, help="folder for screenshots, figures and result.json")
    args = parser.parse_args(argv)
    if not os.environ.get("DISPLAY"):
        parser.error("no X display: run under Xvfb (make gui-test does)")
    Path(args.out).mkdir(parents=True, exist_ok=True)

    import cellprofiler.__main__ as cellprofiler_main
    import cellprofiler.gui.app as cellprofiler_app

    original_on_init = cellprofiler_app.App.OnInit

    def on_init(app):
        # CellProfiler's own start-up first (main window, pipeline, file list); then the driver.
        started = original_on_init(app)
        if started:
            app.driver = Driver(app, args)
        return started

    cellprofiler_app.App.OnInit = on_init
    sys.argv = [
        "cellprofiler",
        "-p", str(Path(args.pipeline).resolve()),
        "-i", str(Path(args.images).resolve()),
        "-o", str((Path(args.out) / "cellprofiler-output").resolve()),
        "-e", "imageio_reader",
    ]
    cellprofiler_main.main()
    # MainLoop returned without the driver's exit: the application closed on its own.
    print("[gui-driver] CellProfiler's main loop ended before the checks finished", file=sys.stderr)
    return 3


if __name__ == "__main__":
    sys.exit(main())
