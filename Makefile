# Two commands for users: `make run` (whole pipeline on demo data) and `make test`.
# bash with pipefail: the install pipes pip into a progress printer and must still fail when pip does
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
# setuptools' notice on every editable install ("be careful with folders ... with the same name as your
# package") is about its import hook, not about anything a user must act on: the package is
# dagster_project, and the top-level dbt/ folder holds no Python (see README, "Project layout").
export PYTHONWARNINGS := ignore:Editable installation
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SPARK_STAMP := $(VENV)/.installed-spark
DATA_DIR ?= $(or $(PIPELINE_DATA_DIR),data)

.PHONY: install install-spark browser run demo test lint lint-fix soak dev status clean-data help bench

help:
	@echo "make run    - install (once), create demo exports if the inbox is empty, run the whole pipeline"
	@echo "make test   - install (once), lint, and run the test suite"
	@echo "make lint   - ruff (Python lint and format check) and sqlfluff (dbt models); make lint-fix fixes"
	@echo "make soak   - fault and abuse suite with more rounds; figures into docs/soak-latest.md (SOAK_* env vars)"
	@echo "make dev    - open the Dagster UI (dagster dev) on this project"
	@echo "make demo   - (re)write demo exports into $(DATA_DIR)/inbox"
	@echo "make status - last runs, what is published, failing checks"
	@echo "make bench  - pipeline vs engine limit vs peers at SIZES order lines (default 1M,10M; long)"

$(STAMP): pyproject.toml constraints.txt
	@echo "==> [1/4] creating $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> [2/4] upgrading pip"
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@echo "==> [3/4] installing the pinned dependencies (Dagster, dbt, DuckDB, GX, pandas; about 60-90 s, one dot per package)"
	@$(BIN)/python -m pip install --disable-pip-version-check -c constraints.txt -e '.[dev]' \
		| awk '/^Collecting /{printf "."; fflush()} END{print ""}'
	@# dagster-dbt's "prepare" step: the dbt manifest and parse state, so the first run does not parse (~10 s)
	@echo "==> [4/4] parsing the dbt project for $(DATA_DIR) (about 10-40 s)"
	@$(BIN)/python -m dagster_project prepare --data-dir $(DATA_DIR)
	@touch $@

install: $(STAMP)

# The optional `spark` extra (dbt-spark, pyspark; ~45 s): the tests build the dbt models on Spark too.
$(SPARK_STAMP): $(STAMP)
	@echo "==> installing the spark extra (dbt-spark[session], pyspark)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,spark]'
	@touch $@

install-spark: $(SPARK_STAMP)

run: $(STAMP)
	$(BIN)/python -m dagster_project demo --data-dir $(DATA_DIR) --if-empty
	$(BIN)/python -m dagster_project run --data-dir $(DATA_DIR)

status: $(STAMP)
	$(BIN)/python -m dagster_project status --data-dir $(DATA_DIR)

demo: $(STAMP)
	$(BIN)/python -m dagster_project demo --data-dir $(DATA_DIR)

# Debian's chromium, for the test that opens the run report in a real browser (tests/browser.py).
# Installed as root with apt-get where it is missing; elsewhere the note says how, and that test
# skips (it fails under CI, where the browser must be there).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "==> installing Debian's chromium for the report's browser test (about 30 s)"; \
	    apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 \
	      || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium >/dev/null; } \
	      || echo "note: apt-get could not install chromium; the report's browser test will say so"; \
	  else \
	    echo "note: chromium is not installed (sudo apt-get install chromium); the report's browser test will skip"; \
	  fi; }

# lint first: it fails in seconds, before the spark extra installs and the suite runs
test: lint $(SPARK_STAMP) browser
	$(BIN)/python -m pytest

# Configuration: [tool.ruff] in pyproject.toml, dbt/.sqlfluff (README, "Linting").
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	cd dbt && ../$(BIN)/sqlfluff lint models tests

# Rewrites files: review the diff (sqlfluff fixes only the SQL outside jinja tags).
lint-fix: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	cd dbt && ../$(BIN)/sqlfluff fix models tests

soak: $(STAMP)
	$(BIN)/python -m tests.soak --write-reliability

dev: $(STAMP)
	@# the definitions load from the dbt manifest and never parse: parse first if a dbt file changed
	$(BIN)/python -m dagster_project prepare --data-dir $(DATA_DIR) --if-changed
	@# one Dagster instance for the UI, the schedule, the CLI and `status`: <data dir>/dagster_home
	$(BIN)/python -c "from dagster_project.cli import _instance; from dagster_project.lib.paths import DataPaths; _instance(DataPaths.of('$(DATA_DIR)'))"
	@# `dagster dev` warns that the `dg` CLI supersedes it; `dg` (dagster-dg-cli) is not installed and the
	@# command works as documented, so that warning, which is about our tooling and not the data, is hidden
	DAGSTER_HOME=$(abspath $(DATA_DIR))/dagster_home PIPELINE_DATA_DIR=$(abspath $(DATA_DIR)) \
		PYTHONWARNINGS='ignore:Function `dev_command` is superseded' \
		$(BIN)/dagster dev -w workspace.yaml

clean-data:
	rm -rf $(DATA_DIR)/warehouse $(DATA_DIR)/serving $(DATA_DIR)/exports $(DATA_DIR)/dagster_home

# Benchmark (BENCHMARKS.md): installs the optional `bench` extra (pymc-marketing) first.
SIZES ?= 1000000,10000000
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,bench]'
	@touch $@

bench: $(BENCH_STAMP)
	$(BIN)/python bench/pipeline_bench.py --sizes $(SIZES) $(BENCH_ARGS)
