# moodtunes — the two commands that matter are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed
EXTRAS ?= device,cloud,dev
SHARED ?= ../shared/datasets

.PHONY: demo test venv lint lock dashboards bundle clean

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

## Regenerate the lock files after changing dependencies (needs `pip install uv`):
## lock.txt is universal (x86_64 + aarch64); pi-aarch64.txt is what the Pi bundle installs.
lock:
	uv pip compile pyproject.toml --extra device --extra cloud --extra dev --extra pi --universal \
	  --python-version 3.11 -c requirements/lock-constraints.txt -o requirements/lock.txt
	uv pip compile pyproject.toml --extra device --extra pi --python-platform aarch64-manylinux_2_36 \
	  --python-version 3.11 -c requirements/lock-constraints.txt -c requirements/lock.txt \
	  -o requirements/pi-aarch64.txt

## Regenerate the committed Grafana dashboards from cloud/moodtunes_cloud/dashboards.py.
dashboards: $(STAMP)
	$(VENV)/bin/python -m moodtunes_cloud.dashboards --out cloud/grafana/dashboards/

## Offline install bundle for Raspberry Pi OS (aarch64), written to dist/.
bundle:
	provisioning/build-bundle.sh dist

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
