# flashsale: `make report` runs the experiments and renders the reports; `make test` runs the test suite.
# Both create .venv and install the project into it first if needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml $(wildcard flashsale/__init__.py)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

.PHONY: install
install: $(STAMP) ## create .venv and install flashsale with its test tools

.PHONY: test
test: $(STAMP) ## run the whole test suite (starts and stops its own PostgreSQL and, for the tests that ask, Valkey)
	$(BIN)/python -m pytest

.PHONY: report
report: $(STAMP) ## run the default sweep (sweeps/default.yaml), render reports/index.html, stop the servers
	$(BIN)/flashsale db up
	$(BIN)/flashsale redis up
	$(BIN)/flashsale sweep; status=$$?; $(BIN)/flashsale redis down; $(BIN)/flashsale db down; exit $$status

.PHONY: bench
bench: $(STAMP) ## issue 17's benchmark targets (~15 min on 2 cores, quiet machine): which hold and how far each is
	$(BIN)/flashsale db up
	$(BIN)/flashsale redis up
	$(BIN)/python benchmarks/targets.py; status=$$?; $(BIN)/flashsale redis down; $(BIN)/flashsale db down; exit $$status

.PHONY: lab
lab: $(STAMP) ## open the notebooks in JupyterLab (they run top to bottom on the embedded database)
	$(BIN)/jupyter lab --notebook-dir=notebooks

.PHONY: lint
lint: $(STAMP) ## ruff (the package, tests, benchmarks and notebooks) and mypy (the package; settings in pyproject.toml)
	$(BIN)/ruff check flashsale tests benchmarks notebooks
	$(BIN)/ruff format --check flashsale tests benchmarks
	$(BIN)/mypy

.PHONY: clean
clean: ## remove the virtual environment, the database directory and generated output
	rm -rf $(VENV) .flashsale reports/*.html reports/runs
	find data -mindepth 1 -maxdepth 1 ! -name README.md ! -name reference -exec rm -rf {} +
