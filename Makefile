# The two README commands: `make up` (the whole dashboard) and `make test` (the whole test suite).
# Both install what is missing into ./.venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch goes in first and pinned: the CPU wheel on disk (or PyPI's default build elsewhere), so pip never
# resolves a bare `torch` into a multi-GB CUDA download on a machine without one.
TORCH ?= torch==2.13.0
export NUMBA_CACHE_DIR ?= $(CURDIR)/.topowatch/numba-cache

.PHONY: up test browser bench clean

up: $(VENV)/.installed
	$(BIN)/topowatch up

test: $(VENV)/.installed browser
	$(BIN)/python -m pytest -q

bench: $(VENV)/.installed
	$(BIN)/python bench/bench.py

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

# Headless Chromium for the browser tests (Debian's package; Playwright drives it, downloads nothing).
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	  else echo "the browser tests need Chromium: sudo apt-get install chromium chromium-driver"; exit 1; fi; }

clean:
	rm -rf $(VENV) .topowatch .pytest_cache test-artifacts
