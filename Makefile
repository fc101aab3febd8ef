# Two commands for a fresh machine: `make demo` and `make test`.
# Each creates the virtualenv .venv (if missing), installs the package into it and runs.
# torch is pinned by constraints.txt to the CPU build this kind of machine has on disk;
# the library itself only asks for a range.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PIP     = $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt
.PHONY: demo test test-fast bench compare video video-part video-all clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.demo-installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e '.[torch,scipy,plot]'
	touch $@

$(VENV)/.test-installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e '.[test]'
	touch $@ $(VENV)/.demo-installed

demo: $(VENV)/.demo-installed
	$(BIN)/arma demo
	$(BIN)/arma erf --output out/erf.png
	@echo "Figure 3 (ERF maps of linear ARMA networks) written to out/erf.png"

test: $(VENV)/.test-installed
	$(BIN)/python -m pytest -q

test-fast: $(VENV)/.test-installed
	$(BIN)/python -m pytest -q -m "not slow"

$(VENV)/.bench-installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e '.[bench]'
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
	touch $@

# The CPU comparison of docs/experiments.md (video): Table 3's five models x 3 seeds at speeds
# 1x, 3x, 2x and Table 4's non-local models at 1x, in 8 parts (arma video --list-parts), each
# under 90 minutes on 2 cores and resumable (run the same target again after an interruption);
# every part rebuilds the tables in video-runs/quick from all the runs finished so far.
# `make video` is part 1; `make video-part PART=N` any part; `make video-all` all of them.
VIDEO_RUN = $(BIN)/arma video --preset quick --resume --out video-runs/quick $(VIDEO_ARGS)
video: $(VENV)/.experiments-installed
	$(VIDEO_RUN) --part 1
video-part: $(VENV)/.experiments-installed
	$(VIDEO_RUN) --part $(PART)
video-all: $(VENV)/.experiments-installed
	for p in 1 2 3 4 5 6 7 8; do $(VIDEO_RUN) --part $$p || exit 1; done

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
