# Two commands for users: `make run` (whole pipeline on demo data) and `make test`.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA_DIR ?= $(or $(PIPELINE_DATA_DIR),data)

.PHONY: install run demo test soak dev clean-data help

help:
	@echo "make run    - install (once), create demo exports if the inbox is empty, run the whole pipeline"
	@echo "make test   - install (once) and run the test suite"
	@echo "make soak   - fault and abuse suite with more rounds; figures into RELIABILITY.md (SOAK_* env vars)"
	@echo "make dev    - open the Dagster UI (dagster dev) on this project"
	@echo "make demo   - (re)write demo exports into $(DATA_DIR)/inbox"

$(STAMP): pyproject.toml constraints.txt
	@echo "==> creating $(VENV) with $(PYTHON) and installing pinned dependencies (about 90 s the first time)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m dagster_project demo --data-dir $(DATA_DIR) --if-empty
	$(BIN)/python -m dagster_project run --data-dir $(DATA_DIR)

demo: $(STAMP)
	$(BIN)/python -m dagster_project demo --data-dir $(DATA_DIR)

test: $(STAMP)
	$(BIN)/python -m pytest

soak: $(STAMP)
	$(BIN)/python -m tests.soak --write-reliability

dev: $(STAMP)
	PIPELINE_DATA_DIR=$(abspath $(DATA_DIR)) $(BIN)/dagster dev -w workspace.yaml

clean-data:
	rm -rf $(DATA_DIR)/warehouse $(DATA_DIR)/serving $(DATA_DIR)/exports $(DATA_DIR)/dagster_home
