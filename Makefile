# The two commands: `make demo` and `make test`. Both set up the virtual environment first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The dashboard's browser tests drive Debian's Chromium with Playwright (no browser download).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint typecheck unit schema clean

# The extras installed for development, and the versions they were tested with: pyproject.toml
# keeps lower bounds (the library's promise), constraints.txt the exact versions CI ran, so a
# fresh machine gets those. Either file changing re-installs.
EXTRAS := test,postgres,bench,otel
CONSTRAINTS := constraints.txt

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --constraint $(CONSTRAINTS) -e ".[$(EXTRAS)]"
	touch $(STAMP)

# Regenerate constraints.txt after changing the dependencies in pyproject.toml: installs what
# pyproject.toml asks for (without the old constraints, which may conflict with the change)
# and records every installed version. Run the tests, then commit both files.
.PHONY: lock
lock:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[$(EXTRAS)]"
	{ echo "# The versions \`make test\` and \`make demo\` install (pip --constraint); regenerate"; \
	  echo "# with \`make lock\` after changing dependencies in pyproject.toml. Python $$($(BIN)/python -c 'import platform; print(platform.python_version())')."; \
	  $(BIN)/pip freeze --exclude-editable; } > $(CONSTRAINTS)
	touch $(STAMP)

# The main job: order sagas flowing through the engine on embedded SQLite (sagas-demo.db).
demo: $(STAMP)
	$(BIN)/sagas demo --orders 2000 --fail-rate 0.2

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check sagas tests examples benchmarks fuzz
	$(BIN)/ruff format --check sagas tests examples benchmarks fuzz

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

# The full fuzzing campaign (fuzz/README.md): 100,000 definitions and 100,000 events through
# every way in; `make test` runs a bounded slice of it (tests/fuzz).
.PHONY: fuzz
fuzz: $(STAMP)
	$(BIN)/python -m fuzz
