# Set-up is part of every target: a fresh checkout needs only Python 3.11+ and `make demo` or `make test`.
PYTHON ?= python3
VENV := .venv
READY := $(VENV)/.ready

.PHONY: install demo cluster-demo test bench soak clean

$(READY): setup.cfg pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -c constraints.txt -e '.[test]'
	@touch $@

install: $(READY)

demo: $(READY)
	bin/run-server --demo

cluster-demo: $(READY)
	bin/cluster-demo

.PHONY: lint
# ruff and mypy, as configured in pyproject.toml. The five test directories that are import roots of their own
# (each with its conftest.py, importing siblings by bare name) get a mypy run each.
lint: $(READY)
	$(VENV)/bin/ruff check
	$(VENV)/bin/mypy
	for dir in clients monitoring resilience serving simulator; do MYPYPATH=tests/$$dir $(VENV)/bin/mypy tests/$$dir || exit 1; done

test: $(READY) lint
	$(VENV)/bin/python -m pytest

bench: $(READY)
	bin/bench

soak: $(READY)
	bin/soak

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .hypothesis
