# Two commands do all set-up on a fresh machine:  make demo  |  make test
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.wsbench-installed
RUNS   ?= runs/demo

.PHONY: install demo test test-fast test-slurm lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## demo: the paper's three tables on the built-in synthetic belt (one seed), then the figures
demo: $(STAMP)
	$(BIN)/wsbench suite benchmarks/paper.toml --seeds 1 --runs-dir $(RUNS)
	$(BIN)/wsbench figures --runs-dir $(RUNS) --overwrite

## test: the test suite (699 tests on tiny generated data, about 4.6 minutes on 2 idle cores)
test: $(STAMP)
	$(BIN)/python -m pytest -q

## test-fast: the edit-test loop, without the slow end-to-end tests (pytest -m "not slow")
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

## test-slurm: start a single-node SLURM cluster on this machine (root; installs slurm-wlm and munge when
## missing) and run the tests that submit jobs to it (pytest -m slurm, a few minutes on 2 cores)
test-slurm: $(STAMP)
	scripts/slurm-cluster.sh
	$(BIN)/python -m pytest -q -m slurm

## lint: ruff (pyflakes, bugbear, isort, pyupgrade, pycodestyle) and mypy, as configured in pyproject.toml
lint: $(STAMP)
	$(BIN)/ruff check wsbench tests benchmarks
	$(BIN)/mypy

## bench: the performance benchmark, one table + ratios (under 10 min on 2 CPU cores; BENCH_ARGS=--quick)
bench: $(STAMP)
	$(BIN)/python benchmarks/perf.py $(BENCH_ARGS)

clean:
	rm -rf runs/demo .pytest_cache
