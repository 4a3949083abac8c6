# streamrec - see README.md. Every target installs what it needs into .venv first.
export SAM_CLI_TELEMETRY := 0
# The Lambda runtime is python3.12: the venv uses it too, so that `sam build` finds it.
PYTHON ?= $(shell for p in python3.12 $(HOME)/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12; do \
	$$p -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1 && echo $$p && break; done)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint unit build validate clean eval bench constraints

# Installs within constraints.txt: the versions CI last passed with.
$(STAMP): pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "error: Python 3.12 not found (the Lambda runtime is python3.12); install it or run make PYTHON=/path/to/python3.12" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev,eval]"
	touch $(STAMP)

install: $(STAMP)

# The evaluation's peers and plot (the `eval` extra); rtrec compiles a C extension.
EVAL_STAMP := $(VENV)/.installed-eval
$(EVAL_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev,eval,rtrec]"
	touch $(EVAL_STAMP)

## eval: P1, P2, P3 and P4 of ../shared/EVALUATION.md and the content and demand protocols on ../shared/datasets (skipped when absent), with
## progress; writes eval/report.md, eval/report.json, eval/hr_at_k.png (about 30 min here, an hour beside other jobs; rtrec apart: see README)
eval: $(EVAL_STAMP)
	$(BIN)/streamrec eval all $(EVAL_ARGS)

## bench: ingest events/s per core, DynamoDB units per event vs a naive design, API round trips
## and scoring p50/p99, cache hit rate, end to end on the local stack, $ per million; needs
## ../shared/datasets (Taobao); prints a table, writes bench/results.json (4-9 min here)
bench: $(STAMP)
	$(BIN)/streamrec bench $(BENCH_ARGS)

## run: start the local stack (moto + pollers + HTTP API on :3000) and load the demo data
##      (options of `streamrec run` in RUN_ARGS, e.g. make run RUN_ARGS="--port 3001")
run: $(STAMP)
	$(BIN)/streamrec run $(RUN_ARGS)

## test: ruff + mypy, unit + integration tests, sam validate --lint, sam build
test: lint unit validate build

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# On every core, 4 at most (pytest-xdist; each worker holds ~450 MB): about half the time on two.
unit: $(STAMP)
	$(BIN)/pytest -n auto --maxprocesses 4

validate: $(STAMP)
	$(BIN)/sam validate --lint --region us-east-1

# PATH puts the venv first so that sam finds python3.12 for the runtime. Then the artifacts
# get their bytecode: Lambda's /opt and /var/task are read-only, so without it every cold
# start compiles numpy, pydantic, Powertools and streamrec again (the API function's imports
# took 1.3-1.8 s of CPU here without, 0.8-0.9 s with). unchecked-hash: a zip's timestamps
# must not make the files look stale.
build: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/sam build --cached --parallel
	$(BIN)/python -m compileall -q -j 0 --invalidation-mode unchecked-hash .aws-sam/build

## constraints: re-pin constraints.txt to the newest versions pyproject.toml allows (a scratch
##              venv); then pin the layers' requirements to match and run make test
constraints:
	@test -n "$(PYTHON)" || { echo "error: Python 3.12 not found" >&2; exit 1; }
	rm -rf .constraints-venv
	$(PYTHON) -m venv .constraints-venv
	.constraints-venv/bin/pip install --quiet --upgrade pip
	.constraints-venv/bin/pip install --quiet -e ".[dev,eval]"
	{ sed -n '/^#/p' constraints.txt; .constraints-venv/bin/pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf .constraints-venv
	@echo "constraints.txt re-pinned; now set the same versions in src/requirements.txt and layers/scoring/requirements.txt (make test checks them)"

clean:
	rm -rf .aws-sam .local .pytest_cache .ruff_cache .mypy_cache .hypothesis
