# Two commands on a fresh Debian machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3
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

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "rpacs needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $(STAMP)

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
