# Quick start: `make demo` (install + run the workflow on the embedded demo cohort), `make test`.
PYTHON ?= python3
VENV ?= .venv
CORES ?= 2
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint clean-demo help

help:
	@echo "make demo   - install into $(VENV) and run the workflow on the demo cohort -> results/demo/report.html"
	@echo "make test   - run the test suite (unit, peer and end-to-end tests)"
	@echo "make lint   - snakemake --lint"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --workflow-profile workflow/profiles/default --cores $(CORES)
	@echo "report: results/demo/report.html"

test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -ra

test-fast: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -ra -m "not e2e"

lint: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --lint

clean-demo:
	rm -rf results/demo data/demo logs/demo
