# The two commands: `make demo` and `make test`. Both set up the virtual environment first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit schema clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/sagas validate definitions/
	$(BIN)/sagas graph definitions/order_fulfillment.yaml

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check sagas tests examples benchmarks
	$(BIN)/ruff format --check sagas tests examples benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy sagas examples

unit: $(STAMP)
	$(BIN)/pytest

# Regenerate the JSON Schema of the YAML format after changing the models.
schema: $(STAMP)
	$(BIN)/sagas schema > definitions/saga.schema.json

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
