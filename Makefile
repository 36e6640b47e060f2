# cnnlab: `make help` lists every target. The first call creates .venv with the pinned dependencies.
PYTHON   ?= python3
VENV     ?= .venv
BIN      := $(VENV)/bin
EXP      ?= mnist
ARGS     ?=
PROFILE  ?= full
EXPS     ?=
SEEDS    ?=
FORCE    ?=
# Offline copies of the datasets: ../shared/data when it sits beside the checkout (override: DATA_DIR=/path).
DATA_DIR ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
ifneq ($(strip $(DATA_DIR)),)
export CNNLAB_DATA_DIR := $(DATA_DIR)
endif
export TF_CPP_MIN_LOG_LEVEL ?= 3

.DEFAULT_GOAL := help
.PHONY: help venv venv-dev run reproduce params list check compare precision arith zoo explain lint test test-slow bench bench-overhead bench-images bench-backends bench-suite bench-precision bench-cpu bench-cli clean distclean

help: ## List the targets with one line each
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  make %-15s %s\n", $$1, $$2}'
	@echo "  Variables: EXP=$(EXP) ARGS='$(ARGS)' DATA_DIR=$(DATA_DIR)"

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements.lock -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[dev]'
	touch $@

venv: $(VENV)/.installed ## Create .venv with the pinned runtime dependencies (TensorFlow backend)

venv-dev: $(VENV)/.installed-dev ## Add the test dependencies (pytest, jax)

run: venv ## Train one experiment: make run EXP=mnist ARGS="train.epochs=1" (or ARGS="--profile quick")
	$(BIN)/cnnlab run $(EXP) $(ARGS)

reproduce: venv ## Every experiment (or EXPS="mnist kim_*") the reference's protocol (3 seeds, Kim's CV sets over 10 folds) or SEEDS=N, PROFILE=quick|full; FORCE=1 reruns complete ones; on Ray (a local runtime; ARGS="--address HOST:6379" for a cluster)
	$(BIN)/cnnlab reproduce $(foreach e,$(EXPS),'$(e)') --profile $(PROFILE) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(FORCE),--force) $(ARGS)

params: venv ## Print an experiment's parameter table without training: make params EXP=mnist_no_pooling
	$(BIN)/cnnlab params $(EXP) $(ARGS)

list: venv ## List the experiments with their one-line descriptions
	@$(BIN)/cnnlab list

check: venv ## Validate every config (full and quick profiles) without touching data
	$(BIN)/cnnlab check --build

compare: venv ## Regenerate results/summary.{csv,md}; with A=dir B=dir, set two result sets side by side
	$(BIN)/cnnlab compare $(A) $(B)

precision: venv ## The precision study from the runs in results/: float32 against mixed_bfloat16 per family (Welch) → results/precision.md
	$(BIN)/cnnlab precision

arith: venv ## The lectures' calculators (output size, receptive field, max-pool backprop, ...) → results/arith.md
	$(BIN)/cnnlab arith report

explain: venv ## Saliency, Grad-CAM, activations, filter patterns of EXP's newest run → results/EXP/<run>/explain/
	$(BIN)/cnnlab explain $(EXP) $(ARGS)

zoo: venv ## Parameter table of LeNet-5, AlexNet, VGG, GoogLeNet, ResNet50, DenseNet121, MobileNet → results/zoo.md
	$(BIN)/cnnlab zoo

lint: venv-dev ## ruff: lint and format check of cnnlab/, tests/ and benchmarks/ (as in CI)
	$(BIN)/ruff check cnnlab tests benchmarks
	$(BIN)/ruff format --check cnnlab tests benchmarks

test: venv-dev ## Run the fast test suite (a few minutes on 2 CPU cores)
	$(BIN)/python -m pytest

test-slow: venv-dev ## Run the real-data tests that take minutes (full MNIST training)
	$(BIN)/python -m pytest -m slow

bench: bench-overhead bench-images bench-backends bench-suite bench-precision bench-cpu bench-cli ## All benchmarks (results/bench*.md; about an hour on 2 cores)

bench-overhead: venv ## cnnlab vs the same model as a plain Keras script, per family (MNIST, IMDB, images) → results/bench.md
	$(BIN)/python benchmarks/bench.py $(ARGS)

bench-backends: venv-dev ## Seconds per epoch of MNIST, IMDB Conv1D, Kim's CNN and the augmented images under each installed backend → results/bench_backends.md
	$(BIN)/python benchmarks/bench_backends.py

bench-suite: venv-dev ## Wall time of `reproduce --profile quick` from an empty cache, as on a fresh clone → results/bench_suite.md
	$(BIN)/python benchmarks/bench_suite.py $(ARGS)

bench-cpu: venv ## CPU costs besides precision: Kim's trained embedding, XLA (jit_compile) per family, TensorFlow threads → results/bench_cpu.md
	$(BIN)/python benchmarks/bench_cpu_costs.py $(ARGS)

bench-precision: venv ## float32 vs mixed_bfloat16: matmul peaks and per-family samples/s, and what train.precision: auto picks here → results/bench_precision.md
	$(BIN)/python benchmarks/bench_precision.py $(ARGS)

bench-cli: venv ## Wall time of `cnnlab list`, `check` and a schema error, each a fresh process, against 1 s → results/bench_cli.md
	$(BIN)/python benchmarks/bench_cli.py $(ARGS)

bench-images: venv ## Decode/cache, augmentation layers vs ImageDataGenerator, aug vs no-aug, quick profiles → results/bench_images.md
	$(BIN)/python benchmarks/bench_images.py

clean: ## Remove caches and interrupted (.partial) run folders; keeps .venv and complete results
	rm -rf .cache .pytest_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find results -name '.*.partial' -type d -prune -exec rm -rf {} + 2>/dev/null || true

distclean: clean ## Also remove .venv
	rm -rf $(VENV)
