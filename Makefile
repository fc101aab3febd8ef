# Two commands for a fresh machine: `make demo` and `make test`.
# Each creates the virtualenv .venv (if missing), installs the package into it and runs.
# torch is pinned by constraints.txt to the CPU build this kind of machine has on disk;
# the library itself only asks for a range.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PIP     = $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt
# The torch autograd node (backends/_lines_torch.cpp, optional) compiles against the venv's torch,
# which pip's isolated build cannot see: built in place after torch is installed (about a minute;
# the line solver built by pip is up to date and left alone). Without it the layers run the same
# kernels through a Python autograd.Function.
NODE    = $(BIN)/python -m pip install --disable-pip-version-check -q 'setuptools>=68' wheel && \
	$(BIN)/python setup.py -q build_ext --inplace
.PHONY: demo test test-fast lint docs bench compare video video-part video-all video-records segment stability classify figure6 fashion-mnist clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.demo-installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e '.[torch,scipy,plot]'
	$(NODE)
	touch $@

$(VENV)/.test-installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e '.[test]'
	$(NODE)
	touch $@ $(VENV)/.demo-installed

demo: $(VENV)/.demo-installed
	$(BIN)/arma demo
	$(BIN)/arma erf --output out/erf.png
	@echo "Figure 3 (ERF maps of linear ARMA networks) written to out/erf.png"

# ARMA_EXPECT_NODE: where a C++ compiler is on PATH, the torch node built above must load
# (tests/test_torch_node.py); without one the layers run the Python node and the test skips
EXPECT_NODE := $(shell command -v $${CXX:-c++} >/dev/null 2>&1 && echo 1 || echo 0)
test: $(VENV)/.test-installed $(VENV)/.foolbox-installed fashion-mnist
	ARMA_EXPECT_NODE=$(EXPECT_NODE) $(BIN)/python -m pytest -q
	$(BIN)/python -m pytest -q --doctest-modules --pyargs arma_core arma_experiments -p no:cacheprovider

test-fast: $(VENV)/.test-installed
	ARMA_EXPECT_NODE=$(EXPECT_NODE) $(BIN)/python -m pytest -q -m "not slow"

$(VENV)/.lint-installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e '.[test,lint,docs]'
	$(NODE)
	touch $@ $(VENV)/.test-installed $(VENV)/.demo-installed

# ruff (lint and format) and mypy, as configured in pyproject.toml
lint: $(VENV)/.lint-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# the guides (docs/*.md) and the API reference from the docstrings, warnings as errors
docs: $(VENV)/.lint-installed
	$(BIN)/python -W error::UserWarning -m sphinx -q -W --keep-going -b html docs docs/_build/html
	@echo "HTML in docs/_build/html/index.html"

$(VENV)/.bench-installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e '.[bench]'
	$(NODE)
	touch $@

# asv against the package installed in .venv (no build, no network); prints the results table.
# ASV_ARGS narrows it, e.g. make bench ASV_ARGS='--bench Solve --quick'
bench: $(VENV)/.bench-installed
	cd asv_bench && ../$(BIN)/asv machine --yes --machine local > /dev/null
	cd asv_bench && ../$(BIN)/asv run --python=same --machine local --show-stderr \
		--set-commit-hash $$(git rev-parse HEAD) $(ASV_ARGS)
	cd asv_bench && ../$(BIN)/asv show --machine local $$(git rev-parse HEAD)

# issue 5's targets 1-7 side by side in one process, the table and docs/performance.png
compare: $(VENV)/.bench-installed
	mkdir -p out
	$(BIN)/python benchmarks/compare.py --plot docs/performance.png --markdown out/performance.md

$(VENV)/.experiments-installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e '.[experiments]'
	$(NODE)
	touch $@

# The CPU comparison of docs/experiments.md (video): Table 3's five models x 3 seeds at speeds
# 1x, 3x (parts 1-7), Table 4's non-local models at 1x (8-11) and Table 3 at 2x (12-14), in 14
# parts (arma video --list-parts), each under 90 minutes on 2 cores by measured run times (the
# non-local ones estimated) and resumable; every part rebuilds the tables in video-runs/quick
# from all the runs finished so far.
# `make video` is part 1; `make video-part PART=N` any part; `make video-all` all of them.
VIDEO_RUN = $(BIN)/arma video --preset quick --resume --out video-runs/quick $(VIDEO_ARGS)
video: $(VENV)/.experiments-installed
	$(VIDEO_RUN) --part 1
video-part: $(VENV)/.experiments-installed
	$(VIDEO_RUN) --part $(PART)
video-all: $(VENV)/.experiments-installed
	for p in $$($(BIN)/arma video --preset quick --list-parts | sed 's/^part \([0-9]*\):.*/\1/'); do \
		$(VIDEO_RUN) --part $$p || exit 1; done
# keep the records of finished runs (each run's results.json, seed 0's prediction.npz, the
# report) in results/video/quick, without the checkpoints; `arma video --table-only --out
# results/video/quick` rebuilds the tables from them (Figure 6 needs the checkpoints)
video-records:
	mkdir -p results/video/quick
	cd video-runs/quick && for d in *-seed*; do \
		test -f $$d/results.json || continue; \
		mkdir -p ../../results/video/quick/$$d && cp $$d/results.json ../../results/video/quick/$$d/; \
		test ! -f $$d/ar_coefficients.npz || cp $$d/ar_coefficients.npz ../../results/video/quick/$$d/; \
		case $$d in *-seed0) test ! -f $$d/prediction.npz || cp $$d/prediction.npz ../../results/video/quick/$$d/;; esac; \
	done; \
	cp $$(ls *.csv *.md *.png *.json 2>/dev/null) ../../results/video/quick/

# the quick preset of docs/experiments.md (semantic segmentation): 4 flat nets + 4 U-Nets x 3 seeds
# on multi-digit MNIST, under 90 minutes on 2 cores
segment: $(VENV)/.experiments-installed
	$(BIN)/arma segment --preset quick --out segment-runs/quick $(SEGMENT_ARGS)

# Data of the classification experiments (docs/experiments.md). Fashion-MNIST comes from Debian's
# dataset-fashion-mnist; installed when apt-get can run as root, else its tests skip (never fails).
# foolbox is installed only for its 20 CIFAR-10 sample images (--no-deps: its code is not used).
FASHION_MNIST = /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz
fashion-mnist:
	@test -f $(FASHION_MNIST) || { command -v apt-get > /dev/null && [ "$$(id -u)" = 0 ] && \
		{ apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; } > /dev/null 2>&1; } || \
		echo "note: Fashion-MNIST not installed (apt-get install dataset-fashion-mnist); its tests skip"

$(VENV)/.foolbox-installed: $(BIN)/python
	$(PIP) --no-deps foolbox==3.3.4
	touch $@

# Figure 5 (with / without the re-parameterization) and Appendix A.4 (classification), quick
# presets: each under 30 minutes on a 2-core CPU; figure6 draws the learned AR coefficients of
# whichever trained models exist (classification, video, segmentation quick runs).
stability: $(VENV)/.experiments-installed
	$(BIN)/arma stability --preset quick --out stability-runs/quick $(STABILITY_ARGS)

classify: $(VENV)/.experiments-installed fashion-mnist
	$(BIN)/arma classify --preset quick --out classify-runs/quick $(CLASSIFY_ARGS)

figure6: $(VENV)/.experiments-installed
	mkdir -p out
	$(BIN)/arma figure6 --out out/figure6.png \
		$$(test -d classify-runs/quick && echo --classify classify-runs/quick) \
		$$(test -d video-runs/quick && echo --video video-runs/quick) \
		$$(test -d segment-runs/quick/arma3 && echo "ARMA-3x3-segment=segment-runs/quick/arma3") \
		$$(test -d segment-runs/quick/arma-unet && echo "ARMA-U-Net-segment=segment-runs/quick/arma-unet") \
		$(FIGURE6_ARGS)

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis docs/_build
