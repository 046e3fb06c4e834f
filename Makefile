# Two entry points for a fresh machine: `make benchmark` and `make test`.
PYTHON3 ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
DATA    ?= synthetic
SPLIT   ?= val
PIPELINES ?= basic,advanced,unet,deepcell
OUT     ?= out/benchmark

.PHONY: venv test test-slow benchmark clean

# The lock is installed with --no-deps: cellprofiler-nightly declares wxPython and
# mysqlclient, which headless runs do not need and which do not build here.
$(VENV)/.installed: requirements.lock setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-deps -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

venv: $(VENV)/.installed

test: venv
	$(PY) -m pytest -m "not slow" -q

test-slow: venv
	$(PY) -m pytest -m slow -q

benchmark: venv
	$(PY) -m benchmark run --data $(DATA) --split $(SPLIT) --pipelines $(PIPELINES) --out $(OUT)

clean:
	rm -rf $(VENV) out .pytest_cache
