# moodtunes — the two commands that matter are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed
EXTRAS ?= device,cloud,dev
SHARED ?= ../shared/datasets

.PHONY: demo test venv lint bench train-emotion baseline-models train-music lock bundle clean

## Run the kiosk in a window with embedded defaults (demo library, sample camera if no webcam).
demo: $(STAMP)
	$(VENV)/bin/moodtunes demo

## Create/update .venv and run the whole test suite.
test: $(STAMP)
	$(VENV)/bin/python -m pytest

venv: $(STAMP)

$(STAMP): pyproject.toml requirements/lock.txt
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -c requirements/lock.txt -e '.[$(EXTRAS)]'
	@touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check device cloud models data bench tests

## Regenerate the universal (x86_64 + aarch64) lock file after changing dependencies.
lock:
	uv pip compile pyproject.toml --extra device --extra cloud --extra dev --extra pi --universal \
	  --python-version 3.11 -c requirements/lock-constraints.txt -o requirements/lock.txt

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
