# The two commands: `make demo` and `make test`. Both set up the virtual environment first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The dashboard's browser tests drive Debian's Chromium with Playwright (no browser download).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint typecheck unit schema clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,postgres,bench,otel]"
	touch $(STAMP)

# The main job: order sagas flowing through the engine on embedded SQLite (sagas-demo.db).
demo: $(STAMP)
	$(BIN)/sagas demo --orders 2000 --fail-rate 0.2

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check sagas tests examples benchmarks
	$(BIN)/ruff format --check sagas tests examples benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy sagas examples

unit: $(STAMP) $(CHROMIUM)
	$(BIN)/pytest

$(CHROMIUM):
	$(SUDO) apt-get install -y -q chromium chromium-driver || \
		($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium chromium-driver)

# Regenerate the dashboard's screenshots in docs/images/ (the browser tests take them).
.PHONY: screenshots
screenshots: $(STAMP) $(CHROMIUM)
	SAGAS_SCREENSHOTS=1 $(BIN)/pytest tests/browser -q

# Regenerate the JSON Schema of the YAML format after changing the models.
schema: $(STAMP)
	$(BIN)/sagas schema > definitions/saga.schema.json

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis

# Benchmarks with their default sizes (see benchmarks/README.md); record results in RESULTS.md.
.PHONY: bench
bench: $(STAMP)
	$(BIN)/python -m benchmarks.sqlite_throughput
	$(BIN)/python -m benchmarks.instance_scaling
	$(BIN)/python -m benchmarks.timers
	$(BIN)/python -m benchmarks.postgres_vs_dbos
