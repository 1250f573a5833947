# The two commands a new user needs: `make demo` and `make test`. `make audit` (needs PyPI)
# checks the installed versions for known vulnerabilities; `make test` never uses the network
# beyond the first install.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
AUDIT_REQS := $(VENV)/audit-requirements.txt

.PHONY: demo test install bench clean audit audit-requirements

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/crm-pulse demo $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

$(DEV_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(DEV_STAMP)

# The exact installed versions (crm-pulse itself left out), written without any network: audit
# them here with `make audit`, or copy the file to any machine that reaches PyPI and run
#   pip install pip-audit && pip-audit --no-deps --disable-pip -r audit-requirements.txt
audit-requirements: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable > $(AUDIT_REQS)
	@echo "wrote $(AUDIT_REQS)"

# Known vulnerabilities (PyPI's advisory data, or AUDIT_ARGS="--vulnerability-service osv")
# in exactly those versions; nothing is installed or resolved, only looked up. Needs PyPI.
audit: $(DEV_STAMP) audit-requirements
	$(BIN)/pip-audit --no-deps --disable-pip --progress-spinner off -r $(AUDIT_REQS) $(AUDIT_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/load.py
	$(BIN)/python benchmarks/scan.py
	$(BIN)/python benchmarks/fanout.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
