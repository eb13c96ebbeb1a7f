# rca_toolkit: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
DEMO_DB := data/demo.sqlite
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install demo demo-data lab test test-fast nbval bench airflow-check clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the toolkit with its dev dependencies

demo-data: $(STAMP) ## (re)build the synthetic demo database data/demo.sqlite
	$(BIN)/rca demo-data --db sqlite:///$(DEMO_DB) --replace

demo: demo-data ## build the demo database and run every notebook on it into reports/ (2 at a time), then the index
	$(BIN)/rca demo-reports

lab: $(STAMP) ## start JupyterLab on the project's kernel (.venv) with the notebooks and runbooks (LAB_ARGS=... for more)
	@test -f $(DEMO_DB) || $(MAKE) --no-print-directory demo-data
	JUPYTER_PATH=$(CURDIR)/$(VENV)/share/jupyter $(BIN)/jupyter lab --notebook-dir=$(CURDIR) $(LAB_ARGS)

test: $(STAMP) ## run the whole test suite (SQLite, real MariaDB, papermill, nbval) on both cores
	$(BIN)/python -m pytest -n 2

test-fast: $(STAMP) ## the suite without notebook executions
	$(BIN)/python -m pytest -n 2 -m "not slow"

nbval: demo-data ## validate every runbook and report notebook with nbval on data/demo.sqlite
	RCA_PROGRESS=0 $(BIN)/python -m pytest --nbval-lax -p no:cacheprovider -o addopts= runbooks/ notebooks/

bench: $(STAMP) ## build a 1M-call world in MariaDB and write benchmarks/results/<date>.json
	$(BIN)/python -m benchmarks.run

airflow-check: $(STAMP) ## validate the Airflow DAG in a real Airflow (its own virtualenv .venv-airflow)
	bash integrations/airflow/check_dag.sh

clean: ## remove the virtualenv, demo data and generated reports
	rm -rf $(VENV) .venv-airflow data/*.sqlite data/*.json reports/*/ reports/index.*
