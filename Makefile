# The two commands (README): `make demo` runs the main job on the embedded default sample;
# `make test` runs the test suite. Both set up everything they need, idempotently.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.twinlab-installed
OUT    ?= out/demo

.PHONY: demo test test-all bench setup system clean

demo: setup
	$(BIN)/twinlab demo --out $(OUT)

test: setup system
	bash scripts/with-display.sh $(BIN)/python -m pytest $(PYTEST_ARGS)

test-all: setup system
	bash scripts/with-display.sh $(BIN)/python -m pytest --runslow $(PYTEST_ARGS)

setup: $(STAMP)

$(STAMP): pyproject.toml napari_plugin/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[all,dev]" -e ./napari_plugin[testing]
	$(BIN)/python -m twinlab._warmup  # compile every numba kernel once, into the on-disk caches
	touch $(STAMP)

system:
	bash scripts/install-system-deps.sh

clean:
	rm -rf $(VENV) out .pytest_cache
