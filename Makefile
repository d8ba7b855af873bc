# The two front-door commands: `make demo` (offline quickstart) and `make test` (the test suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Torch as this machine's pip cap allows (see README); users with newer CUDA stacks can override TORCH_PINS.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install demo test lint clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PINS)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	HF_HUB_OFFLINE=1 $(BIN)/python cli.py fit --config configs/quickstart.yaml

test: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

lint: install
	$(BIN)/python -m ruff check .

clean:
	rm -rf runs .pytest_cache .ruff_cache
