# The front-door commands: `make demo` (offline quickstart), then `make report` and `make tensorboard` on its run;
# `make test` (the test suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Torch as this machine's pip cap allows (see README); users with newer CUDA stacks can override TORCH_PINS.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
# What `make report` reads and writes (globs allowed, e.g. RUNS='runs/sweeps/x/*/seed_*'), what `make tensorboard` shows
RUNS ?= runs/quickstart/seed_0
REPORT ?= runs/quickstart/report
LOGDIR ?= runs/quickstart
PORT ?= 6006

# The versions the test suite passed with, written by `make constraints` (rebuild that stack: docs/tests.md)
CONSTRAINTS ?= requirements/tested.txt

.PHONY: install demo report tensorboard test lint clean constraints

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PINS)
	$(BIN)/python -m pip install --quiet -e ".[dev,loggers]"
	touch $@

install: $(VENV)/.installed

demo: install
	HF_HUB_OFFLINE=1 $(BIN)/python cli.py fit --config configs/quickstart.yaml

report: install
	HF_HUB_OFFLINE=1 $(BIN)/python cli.py report '$(RUNS)' --out $(REPORT)

# the run's dashboards (curves by generation, custom scalars) and, after `make report`, its HParams view
tensorboard: install
	$(BIN)/python -m tensorboard.main --logdir $(LOGDIR) --port $(PORT)

test: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

# after `make test` passed: record the installed versions as a pip constraints file
constraints: install
	@mkdir -p $(dir $(CONSTRAINTS))
	{ echo "# The versions the test suite passed with: make constraints, $$(date -u +%Y-%m-%d), Python $$($(BIN)/python -c 'import platform; print(platform.python_version())')."; \
	  echo "# Rebuild: pip install -c $(CONSTRAINTS) torch torchvision && pip install -c $(CONSTRAINTS) -e '.[dev,loggers]'"; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v '^genbias'; } > $(CONSTRAINTS)
	@echo "wrote $(CONSTRAINTS) ($$(grep -vc '^#' $(CONSTRAINTS)) packages)"

lint: install
	$(BIN)/python -m ruff check .

clean:
	rm -rf runs .pytest_cache .ruff_cache
