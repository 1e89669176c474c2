# Quick start: `make train` then `make test`. Each creates .venv and installs on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
ARGS ?=

.PHONY: install train test test-slow test-readme test-slurm test-docker test-offline test-all docs bench bench-env bench-peers test-bench wheelhouse wheelhouse-bench lint format clean

# pip -qq: errors only. Its warnings here are about the machine's pip configuration (an index
# location it ignores) or setuptools' notes on editable installs, not about the project.
$(STAMP): pyproject.toml
	@echo "Installing selfsup and its dependencies into $(VENV) (first use, or pyproject.toml changed) ..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -qq --upgrade pip
	$(BIN)/pip install -qq -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## Pretrain on the bundled digits with the defaults and print the evaluation table.
train: $(STAMP)
	$(BIN)/python train.py $(ARGS)

## The default test run: everything not marked slow, gpu, readme, slurm or docker (pyproject.toml's addopts);
## one pytest-xdist worker per core (-n auto), an idle worker taking tests queued on the other (--dist worksteal);
## about 7 min on 2 cores (8.5 min on a clean clone, with the .venv install; measured 2026-12-07; the aim is under 12).
test: $(STAMP)
	$(BIN)/python -m pytest -n auto --dist worksteal $(ARGS)

## Slower tests (full-length runs); separate from the default run.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(ARGS)

## Every command of the README and the docs pages run for real, shortened (make lint among them), with make train's
## full run, the GPU evidence script's dry run and docs/extending.md's worked examples in a copy of the project
## (about 23 min on 2 cores). The default run composes every one of them.
test-readme: $(STAMP)
	$(BIN)/python -m pytest -m readme $(ARGS)

## Only the SLURM tests (about 5 min on 2 cores): start a single-node SLURM here (needs root;
## without root they skip, saying so) and submit sweeps to it.
test-slurm: $(STAMP)
	$(BIN)/python -m pytest -m slurm $(ARGS)

## Only the Docker test: build the image and run `make train` in it (needs a Docker daemon, the
## base image and PyPI; without a daemon it skips, saying so).
test-docker: $(STAMP)
	$(BIN)/python -m pytest -m docker $(ARGS)

## Only the offline-install test (3 min on 2 cores; the first run also installs
## torch into .cache/, about 2 min more; needs PyPI): a fresh venv with torch and torchvision alone
## installs a wheelhouse with --no-index and trains one epoch.
test-offline: $(STAMP)
	$(BIN)/python -m pytest -m slow tests/test_offline_install.py $(ARGS)

## Every test this machine can run (gpu, slurm and docker tests skip themselves with a reason).
test-all: $(STAMP)
	$(BIN)/python -m pytest -m "" $(ARGS)

## The documentation site (mkdocs.yml) into site/, strict: a warning (a broken link or anchor, a config
## key without a description in the generated configuration reference) fails the build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

## Benchmarks: views/s of the batched vs per-sample augmentation (32 px, SimCLR recipe), DDP's
## step-time overhead (2 gloo processes vs 1, CPU), every method's step vs SimCLR's (CPU), the framework's step vs a hand-written
## loop (p1), the forward layouts, device-resident batches, the streaming data path, and the label-free metrics' cost (digits, and
## Fashion-MNIST where installed). Figures: BENCHMARKS.md. On a GPU: bench_train.py gpu.
bench: $(STAMP)
	$(BIN)/python scripts/bench_augment.py --size 32 --images 4096
	$(BIN)/python scripts/bench_train.py ddp --batch 64 --steps 10
	$(BIN)/python scripts/bench_train.py methods --batch 64 --steps 10 --warmup 3
	$(BIN)/python scripts/bench_train.py p1 --batch 128 --steps 10 --warmup 3
	$(BIN)/python scripts/bench_train.py layout --batch 128 --steps 10 --warmup 3
	$(BIN)/python scripts/bench_train.py resident --batch 256 --steps 20
	$(BIN)/python scripts/bench_data.py throughput --images 2000 --workers 2
	$(BIN)/python scripts/bench_metrics.py --data digits
	$(BIN)/python scripts/bench_metrics.py --data fashion_mnist --epochs 2

## The step side by side with lightly's and stable-pretraining's SimCLR examples (scripts/bench_peers.py)
## runs in its own environment, .venv-bench: the peers are never installed into .venv nor imported by selfsup.
## webdataset, litdata and mosaicml-streaming: for the streaming data comparison.
BENCH_PEERS := lightly stable-pretraining webdataset litdata mosaicml-streaming pytest
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-stamp
BENCH_ARGS ?= --device cpu --steps 10 --warmup 3 --batch 128

$(BENCH_STAMP): pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -qq --upgrade pip
	$(BENCH_VENV)/bin/pip install -qq -e . $(BENCH_PEERS)
	touch $(BENCH_STAMP)

bench-env: $(BENCH_STAMP)

## lightly vs stable-pretraining vs selfsup, one table, then webdataset vs litdata vs mosaicml-streaming (BENCH_ARGS="--device cuda --steps 50 --warmup 10" on a GPU).
bench-peers: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python scripts/bench_peers.py $(BENCH_ARGS)
	$(BENCH_VENV)/bin/python scripts/bench_data.py libraries --images 2000 --workers 2

## The benchmark scripts' tests that need the peers (one step of each), in .venv-bench.
test-bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python -m pytest -m bench $(ARGS)

## GPU nodes without internet (docs/scaling.md): wheelhouse/ gets the wheels that a machine which has CUDA PyTorch,
## Lightning and timm lacks to run selfsup (hydra-core, omegaconf, pydantic, ... and selfsup's own), for
## its Python and platform; there, `bash scripts/offline_install.sh wheelhouse` installs them. What the
## target has: WHEELHOUSE_HAVE, a list of names (another node: its `pip list --format=freeze`); its
## Python and platform: WHEEL_PYTHON, WHEEL_IMPL, WHEEL_PLATFORMS (pip's manylinux tags, matched
## exactly; all three empty: this interpreter and machine); EXTRAS=wandb,sweep,slurm,shards (or all)
## adds those options' packages.
WHEELHOUSE ?= wheelhouse
WHEELHOUSE_HAVE ?= scripts/gpu_image.txt
WHEEL_PYTHON ?= 3.12
WHEEL_IMPL ?= cp
WHEEL_PLATFORMS ?= manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64
EXTRAS ?=
WHEEL_TARGET = $(addprefix --python-version ,$(WHEEL_PYTHON)) $(addprefix --implementation ,$(WHEEL_IMPL)) \
	$(addprefix --platform ,$(WHEEL_PLATFORMS))

wheelhouse:
	$(PYTHON) scripts/wheelhouse.py --out $(WHEELHOUSE) --have $(WHEELHOUSE_HAVE) --extras "$(EXTRAS)" $(WHEEL_TARGET)

## The benchmark's peers (BENCH_PEERS) and what they need beyond wheelhouse/, into wheelhouse-bench/;
## there: `bash scripts/offline_install.sh wheelhouse`, then the same for wheelhouse-bench.
## The GPU evidence run (scripts/gpu_evidence.sh) needs only lightly and stable-pretraining, without what
## they import only when present (scripts/bench_optional.txt): BENCH_PEERS="lightly stable-pretraining".
wheelhouse-bench: wheelhouse
	$(PYTHON) scripts/wheelhouse.py --out $(WHEELHOUSE)-bench --have $(WHEELHOUSE_HAVE) --have $(WHEELHOUSE) \
		--have scripts/bench_optional.txt $(WHEEL_TARGET) $(BENCH_PEERS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) $(BENCH_VENV) runs multirun outputs site wheelhouse wheelhouse-bench .cache .pytest_cache .mypy_cache .ruff_cache
