# Every target installs what it needs: a .venv built from the requirement files.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# checkov lives in a virtualenv of its own: it pins a boto3 the project's pins exclude.
CHECKOV_VENV  := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

.PHONY: help venv test test-fast lint format demo bench bench-events clean

help:
	@echo "make venv   create .venv, with .venv/bin/drs-inventory (the operator's console)"
	@echo "make demo   deploy to the embedded local AWS, run the scheduled sync, show the inventory"
	@echo "make test   run every test (unit, functional, e2e)"
	@echo "make test-fast  every test but the e2e deployments"
	@echo "make lint   ruff, mypy on lambda/, cfn-lint and checkov on cfn/, shellcheck when installed"
	@echo "make bench  measure the inventory sync at organisation scale"
	@echo "make bench-events  a burst of DRS events (100/s for 30 s): event-to-item latency, calls per event"

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	@echo "==> creating $(VENV) from requirements.txt + requirements-dev.txt"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	@# the project itself, for the drs-inventory command (.venv/bin/drs-inventory)
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP)

$(CHECKOV_STAMP): requirements-checkov.txt
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	@echo "==> creating $(CHECKOV_VENV) from requirements-checkov.txt"
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-checkov.txt
	@touch $(CHECKOV_STAMP)

test: venv
	@$(PY) -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: treating that as a failure"; exit 1; fi; \
	exit $$rc

test-fast: venv
	$(PY) -m pytest -m "not e2e"

# cfn-lint reads .cfnlintrc (informational rules on); checkov fails on any finding not listed,
# with its reason, in .checkov.baseline (by resource and check id). --skip-download and
# CKV_SKIP_PACKAGE_UPDATE_CHECK keep checkov off the network: only its bundled checks run.
lint: venv $(CHECKOV_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	@# each handler folder is its own sys.path root (both have an index.py), so check them apart
	MYPYPATH=lambda:lambda/data-management-handler $(PY) -m mypy lambda/shared lambda/data-management-handler
	MYPYPATH=lambda:lambda/query-handler $(PY) -m mypy lambda/query-handler
	$(VENV)/bin/cfn-lint cfn/*.yaml
	CKV_SKIP_PACKAGE_UPDATE_CHECK=true $(CHECKOV_VENV)/bin/checkov --directory cfn \
	  --framework cloudformation --skip-download --baseline .checkov.baseline --compact --quiet
	@echo "checkov: no finding outside .checkov.baseline"
	@if command -v shellcheck >/dev/null; then shellcheck -x scripts/*.sh scripts/lib/*.sh; \
	else echo "shellcheck not installed: shell scripts not checked (apt-get install shellcheck)"; fi

format: venv
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

demo: venv
	$(PY) -m scripts.demo

# FLEETS="small" for the quick one; the org fleet (30,000 servers) takes several minutes.
FLEETS ?= small org
bench: venv
	@for fleet in $(FLEETS); do $(PY) -m scripts.bench.run --fleet $$fleet || exit 1; done

# BENCH_EVENTS_ARGS="--rate 20 --seconds 10" for a shorter burst.
bench-events: venv
	$(PY) -m scripts.bench.events $(BENCH_EVENTS_ARGS)

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
