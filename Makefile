# streamrec - see README.md. Every target installs what it needs into .venv first.
PYTHON ?= $(shell command -v python3.12 || ls /root/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null | head -n1 || echo python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint unit build validate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## run: start the local stack (moto + pollers + HTTP API on :3000) and load the demo data
run: $(STAMP)
	$(BIN)/streamrec run

## test: ruff, unit + integration tests, sam validate --lint, sam build
test: lint unit validate build

lint: $(STAMP)
	$(BIN)/ruff check .

unit: $(STAMP)
	$(BIN)/pytest

validate: $(STAMP)
	$(BIN)/sam validate --lint --region us-east-1

# PATH puts the venv first so that sam finds python3.12 for the runtime.
build: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/sam build --cached --parallel

clean:
	rm -rf .aws-sam .local .pytest_cache .ruff_cache
