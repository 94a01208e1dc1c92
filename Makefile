# kmervae — `make demo` runs the workflow on the shipped demo genomes, `make test` runs the tests.
# Both create the virtual environment on first use (Python >= 3.11 as python3).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CORES ?= 2
# The CPU build of torch, pinned and installed first: an open range would pull a multi-GB
# CUDA build. On a GPU machine: make TORCH="torch==2.13.0 --index-url <your CUDA wheel index>".
TORCH ?= torch==2.13.0

.PHONY: all install demo test test-fast lint clean bench slurm-deps

all: test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[workflow,dev]'
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --profile profiles/default
	$(BIN)/snakemake --profile profiles/default --report results/report.html

test: $(STAMP) slurm-deps
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not slurm"

# The workflow's own checks (also run by `make test`).
lint: $(STAMP)
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow/rules

# SLURM and munge for tests/test_slurm.py (a one-node cluster it starts itself): installed
# with apt-get when running as root on Debian/Ubuntu and missing; otherwise the test skips.
slurm-deps:
	@if command -v slurmctld >/dev/null && command -v munged >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null \
		|| echo "slurm-deps: could not install slurm-wlm munge; the SLURM test will be skipped"; \
	else echo "slurm-deps: not root or no apt-get; the SLURM test will be skipped"; fi

clean:
	rm -rf results logs benchmarks .snakemake
