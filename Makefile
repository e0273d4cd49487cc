# Two commands on a fresh Debian machine with Python 3.11: `make demo` and `make test`.
# The venv's interpreter: Debian's own (/usr/bin/python3) when it is 3.11 or newer and can
# make a venv (or root can install python3-venv for it), else the first python3 on PATH;
# `make PYTHON=...` chooses another. Debian's is the one apt keeps patched, and it is built
# with profile-guided optimisation: faster than a default build from source, such as
# pyenv's (docs/operations.md has the figures).
SYSTEM_PYTHON := /usr/bin/python3
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell $(SYSTEM_PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
                  2>/dev/null && { $(SYSTEM_PYTHON) -c 'import ensurepip' 2>/dev/null \
                  || [ "$$(id -u)" = 0 ]; } && echo $(SYSTEM_PYTHON) || echo python3)
endif
# The interpreter itself (not a pyenv shim in front of it) and its version.
PYTHON_PATH := $(shell $(PYTHON) -c 'import os, sys; \
                 print(os.path.realpath(sys.executable), sys.version.split()[0])' 2>/dev/null)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Debian packages the tests need: PostgreSQL for its tests, Chromium for the browser tests of
# the web app (driven by Playwright, never a browser download of its own), DCMTK as the
# independent DICOM network client of the gateway tests and benchmark, and Info-ZIP's unzip
# as an independent reader of the export's zips.
APT_PACKAGES ?= postgresql chromium dcmtk unzip

.PHONY: demo test bench lint venv system-packages clean

venv: $(STAMP)

# The stamp names the interpreter the venv was made with: a venv of another one (an older
# checkout, another PYTHON=) is made again.
ifneq ($(file <$(STAMP)),$(PYTHON_PATH))
.PHONY: $(STAMP)
endif

# Debian ships venv's ensurepip in a package of its own (python3-venv), which a fresh
# machine may lack.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "rpacs needs Python >= 3.11"'
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || bash scripts/ensure-system-packages.sh python3-venv
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@echo '$(PYTHON_PATH)' > $(STAMP)

system-packages:
	@bash scripts/ensure-system-packages.sh $(APT_PACKAGES)

demo: venv
	RPACS_HOME=$${RPACS_HOME:-$(CURDIR)/demo-home} $(BIN)/rpacs demo

test: venv system-packages
	$(BIN)/ruff check src tests benchmarks
	bash scripts/with-postgres.sh $(BIN)/python -m pytest -n 2 -q

# Bytecode first, as an installed package has it: with PYTHONDONTWRITEBYTECODE set, an
# editable install would compile rpacs's modules anew at every command start.
bench: venv system-packages
	$(BIN)/python -m compileall -q src
	$(BIN)/python benchmarks/deid_throughput.py
	$(BIN)/python benchmarks/export_throughput.py
	$(BIN)/python benchmarks/dicom_ingest.py
	$(BIN)/python benchmarks/worker_stages.py

lint: venv
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) demo-home bench-work
