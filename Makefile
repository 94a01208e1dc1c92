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

.PHONY: all install demo test test-avx2 test-fast lint clean bench slurm-deps

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

# The tests whose float results depend on how matrix products round, run a second time with
# torch, oneDNN and MKL held to AVX2 (on x86-64; other CPUs have no such switch): on a machine
# with AVX-512 or AMX, an assertion that wrongly expects the same bits across instruction
# sets, batch compositions or thread counts then fails here too, not only on another CPU.
# Exact assertions there compare runs on the same machine, batch size and threads only.
REPRO_TESTS := tests/test_embed.py tests/test_index.py tests/test_evaluate_spearman.py \
	tests/test_model.py::test_embed_selects_groups_transforms_like_the_oracle_and_is_deterministic \
	tests/test_model.py::test_sampling_only_in_training_mode \
	tests/test_family.py::test_embed_reads_the_groups_gc_and_lengths_and_refuses_what_is_missing \
	tests/test_train.py::test_same_seed_same_weights_and_resume_is_bit_identical \
	tests/test_evaluate_reports.py::test_map_coordinates_clusters_and_gc
AVX2_ONLY := ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2

test: $(STAMP) slurm-deps
	$(BIN)/python -m pytest -q
	$(MAKE) --no-print-directory test-avx2

test-avx2: $(STAMP)
	@if [ "$$(uname -m)" = x86_64 ]; then \
		echo "test-avx2: the reproducibility tests again, instruction set limited to AVX2"; \
		$(AVX2_ONLY) $(BIN)/python -m pytest -q -p no:cacheprovider $(REPRO_TESTS); \
	else echo "test-avx2: not x86-64, skipped"; fi

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
