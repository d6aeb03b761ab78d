# UNet4MRI: `make run` trains on the embedded synthetic data; `make test` runs the tests.
# Python 3.10 is required (TFX 1.16; see docs/development.md). pyenv's 3.10.13 is named in .python-version.

PYTHON ?= python3.10
VENV := .venv
BIN := $(VENV)/bin
OUTPUT_DIR ?= output
RUN_ARGS ?=

# One Keras for every process: Keras 3 (tensorflow_transform would pick tf_keras if unset).
export TF_USE_LEGACY_KERAS := 0
export TF_CPP_MIN_LOG_LEVEL := 3
# Source files and docs are UTF-8 whatever the machine's locale (CI may have none set).
export PYTHONUTF8 := 1

.PHONY: setup browser run run-nifti unseen-data heads-data test lint bench clean

$(VENV)/.installed: setup.py requirements/lock.txt
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 10), "Python 3.10 is required, found " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip<25" wheel setuptools
	$(BIN)/python -m pip install -q -c requirements/lock.txt -e ".[test]"
	touch $@

setup: $(VENV)/.installed

# Generated data lives in fixed folders (`override`: not settable from the command line) that the
# rules below delete and rewrite, never a user's dataset; it is written again when its generator changes.
GENERATOR := core/synthetic_data.py core/synthetic_head.py core/mni_templates.py

# The embedded default dataset: 40 synthetic patients x 20 slices, 256x256, seed 0.
# `make run DATA_DIR=/path/to/kaggle_3m` trains on other data and generates nothing.
override SYNTHETIC_DIR := data/synthetic
DATA_DIR ?= $(SYNTHETIC_DIR)
$(SYNTHETIC_DIR)/.complete: $(GENERATOR) | setup
	rm -rf $(SYNTHETIC_DIR).partial
	$(BIN)/unet4mri generate-data --out $(SYNTHETIC_DIR).partial --patients 40 --slices 20 --seed 0
	rm -rf $(SYNTHETIC_DIR) && mv $(SYNTHETIC_DIR).partial $(SYNTHETIC_DIR) && touch $@

run: setup $(if $(filter $(SYNTHETIC_DIR),$(DATA_DIR)),$(SYNTHETIC_DIR)/.complete)
	$(BIN)/unet4mri run --data-dir $(DATA_DIR) --output-dir $(OUTPUT_DIR) $(RUN_ARGS)

# The same patients as BraTS-style NIfTI cases (docs/volumes.md).
override NIFTI_DIR := data/synthetic-nifti
$(NIFTI_DIR)/.complete: $(GENERATOR) | setup
	rm -rf $(NIFTI_DIR).partial
	$(BIN)/unet4mri generate-data --format nifti --out $(NIFTI_DIR).partial --patients 40 --slices 20 --seed 0
	rm -rf $(NIFTI_DIR) && mv $(NIFTI_DIR).partial $(NIFTI_DIR) && touch $@

run-nifti: setup $(NIFTI_DIR)/.complete
	$(BIN)/unet4mri run --data-dir $(NIFTI_DIR) --output-dir $(OUTPUT_DIR)-nifti $(RUN_ARGS)

# The unseen family (docs/data.md): other anatomy, lesions and scanner; evaluated once, never tuned on.
override UNSEEN_DIR := data/unseen
$(UNSEEN_DIR)/.complete: $(GENERATOR) core/synthetic_unseen.py | setup
	rm -rf $(UNSEEN_DIR).partial
	$(BIN)/unet4mri generate-data --family unseen --out $(UNSEEN_DIR).partial --patients 16 --slices 20 --seed 1
	rm -rf $(UNSEEN_DIR) && mv $(UNSEEN_DIR).partial $(UNSEEN_DIR) && touch $@

unseen-data: $(UNSEEN_DIR)/.complete

# The default family's anatomy with a head around every second brain (docs/data.md): tuning data
# that shows false positives at the skull base; patients apart from the embedded ones (seed 7).
override HEADS_DIR := data/heads
$(HEADS_DIR)/.complete: $(GENERATOR) | setup
	rm -rf $(HEADS_DIR).partial
	$(BIN)/unet4mri generate-data --family heads --out $(HEADS_DIR).partial --patients 16 --slices 20 --seed 7
	rm -rf $(HEADS_DIR) && mv $(HEADS_DIR).partial $(HEADS_DIR) && touch $@

heads-data: $(HEADS_DIR)/.complete

# Headless Chromium for tests/unet4mri/test_report_browser.py (the report in a real browser):
# Debian's package, installed where missing (sudo only when not root).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	command -v chromium >/dev/null || ($(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium)

test: setup lint browser
	$(BIN)/python -m pytest -q --durations=25 tests

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

clean:
	rm -rf $(OUTPUT_DIR) $(SYNTHETIC_DIR) $(SYNTHETIC_DIR).partial $(OUTPUT_DIR)-nifti $(NIFTI_DIR) $(NIFTI_DIR).partial $(UNSEEN_DIR) $(UNSEEN_DIR).partial $(HEADS_DIR) $(HEADS_DIR).partial

# Benchmarks (docs/results.md, "Performance"): BENCH_ARGS="--scale full" on a GPU node.
BENCH_ARGS ?=
bench: setup
	$(BIN)/python -m benchmarks.run_all $(BENCH_ARGS)
