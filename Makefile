# PodBoard: `make run` starts the demo on SQLite; `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# One stamp per install: running needs only the package, tests and tools add the [test] extras.
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test lint bench stress reset clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml $(RUN_STAMP)
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

run: $(RUN_STAMP)
	$(PY) manage.py demo --host $(HOST) --port $(PORT)

test: $(TEST_STAMP)
	bin/test

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(TEST_STAMP)
	$(PY) bench/run_all.py

stress: $(TEST_STAMP)
	$(PY) bench/stress.py --full

# A fresh start that keeps the installed virtualenv: the demo database and run files go.
reset:
	rm -rf var db.sqlite3 db.sqlite3-wal db.sqlite3-shm

clean: reset
	rm -rf $(VENV)
