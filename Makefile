# Two promises on a fresh machine: `make notebooks` and `make test`. Each creates or
# refreshes the local virtual environment (.venv) first; nothing else is needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
# The venv's bin first on PATH, so Jupyter kernels started by papermill/nbval use the venv.
RUN := PATH="$(BIN):$$PATH" MPLBACKEND=Agg

.PHONY: setup test notebooks notebooks-inplace bench lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

## Unit tests and the notebooks under nbval (checked outputs must match the committed ones).
test: setup
	$(RUN) $(BIN)/python -m pytest tests notebooks --nbval-lax --nbval-current-env

## Execute every notebook in order with papermill into outputs/notebooks/.
notebooks: setup
	$(RUN) $(BIN)/python scripts/run_notebooks.py

## Re-execute the notebooks in place so the committed copies carry fresh outputs.
notebooks-inplace: setup
	$(RUN) $(BIN)/python scripts/run_notebooks.py --inplace

## Benchmarks: JSON and Markdown under outputs/bench/.
bench: setup
	$(RUN) $(BIN)/python benchmarks/latency.py

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check ttame_lib tests scripts benchmarks

clean:
	rm -rf $(VENV) outputs
