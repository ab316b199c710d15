# Set-up is part of every target: `make train` and `make test` work on a fresh clone.
# On a machine without an NVIDIA GPU, torch is installed first as TORCH_SPEC (a CPU build where the package index
# has one), so pip does not pull a multi-GB CUDA build; with a GPU, pip picks the CUDA build itself.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install install-dev train test test-fast lint format strip clean

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.torch: | $(BIN)/python
	@if $(BIN)/python -c "import torch" 2>/dev/null; then echo "torch already installed"; \
	elif command -v nvidia-smi >/dev/null 2>&1; then echo "NVIDIA GPU found: pip will choose a CUDA build of torch"; \
	else $(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"; fi
	@touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

# litdata (streaming corpora) without its dependencies: they are in the dev extra, except torchvision, whose newest
# release would replace a CPU torch by a CUDA build (docs/scaling.md, Streaming corpora).
$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps "litdata>=0.2.50"
	# ExecuTorch (the `mobile` extra, optional: its tests skip without it), the torch above pinned so it stays.
	$(BIN)/python -m pip install --quiet "executorch>=1.5" "torch==$$($(BIN)/python -c 'import torch; print(torch.__version__)')" \
		|| echo "ExecuTorch could not be installed here: the format=executorch tests will skip"
	@touch $@

install: $(VENV)/.installed ## Create .venv and install the project (editable)

install-dev: $(VENV)/.installed-dev ## Also install the test and lint tools

train: $(VENV)/.installed ## Train the default experiment; Hydra overrides via ARGS="..."
	$(BIN)/nlp-train $(ARGS)

test: $(VENV)/.installed-dev ## Run the whole test suite (slow tests included)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/pytest $(ARGS)

test-fast: $(VENV)/.installed-dev ## Run the tests not marked slow
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/pytest -m "not slow" $(ARGS)

# pre-commit runs the tools by name (`language: system` hooks, see .pre-commit-config.yaml): the venv's come first.
# Hooks that fix files (ruff --fix, ruff format, nbstripout, whitespace) fix them and fail: run it again to see it pass.
lint: $(VENV)/.installed-dev ## All pre-commit hooks on all files: ruff, nbstripout, whitespace, YAML, large files
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pre-commit run --all-files --show-diff-on-failure

format: $(VENV)/.installed-dev ## Fix what ruff can fix and format the code
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

strip: $(VENV)/.installed ## Remove the tasks you do not need: make strip KEEP="text_classification token_classification"
	$(BIN)/python tools/strip.py --keep $(if $(KEEP),$(KEEP),$(error KEEP is empty: name the tasks to keep, e.g. KEEP="text_classification"))

clean: ## Remove build and tool caches (keeps logs/, .cache/ and .venv)
	rm -rf .pytest_cache .ruff_cache build src/*.egg-info
	find . -name __pycache__ -type d -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
