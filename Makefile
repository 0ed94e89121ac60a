# Set-up is part of every target: a fresh checkout needs only Python 3.11+ and `make demo` or `make test`.
PYTHON ?= python3
VENV := .venv
READY := $(VENV)/.ready

# The test tiers (README "Tests"): tests that start processes are marked e2e by the fixtures that start them; the
# few marked alone need the machine to themselves. (-m replaces setup.cfg's own -m "not live", so each says it.)
# Most e2e tests wait on processes more than they compute: 4 workers keep two cores busy (3 took 5:30, 4 4:55,
# 6 no less; 2 took 9:31).
FAST_TIER := -m "not e2e and not live"
FAST_WORKERS ?= 2
WORKERS ?= 4

.PHONY: install demo cluster-demo lint test test-fast test-versions bench soak clean

$(READY): setup.cfg pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -c constraints.txt -e '.[test]'
	@touch $@

install: $(READY)

demo: $(READY)
	bin/run-server --demo

# bin/cluster-demo needs redis-server and redis-sentinel: installed here when missing (as root), never by the service
# itself.
cluster-demo: $(READY)
	@$(VENV)/bin/python -m tests.support.debian redis-server redis-server >/dev/null
	@$(VENV)/bin/python -m tests.support.debian redis-sentinel redis-sentinel >/dev/null
	bin/cluster-demo

# ruff and mypy, as configured in pyproject.toml. The five test directories that are import roots of their own
# (each with its conftest.py, importing siblings by bare name) get a mypy run each.
lint: $(READY)
	$(VENV)/bin/ruff check
	$(VENV)/bin/mypy
	for dir in clients monitoring resilience serving simulator; do MYPYPATH=tests/$$dir $(VENV)/bin/mypy tests/$$dir || exit 1; done

# Everything that needs no internet: both tiers in parallel (the tests that load the machine for minutes share one
# worker: tests/support/tiers.py), then the few marked alone, which need the machine to themselves, one at a time,
# then the fast tier on the other Python versions this machine has. Each step runs whatever the one before said;
# make fails if any did. The other versions' environments are made meanwhile, at the lowest priority, so that
# pip takes only what the tests leave idle (a fresh clone's 3.12 and 3.13: about 40 s less).
test: $(READY) lint
	status=0; \
	nice -n 19 $(VENV)/bin/python -m tests.versions --set-up-only >$(VENV)/versions-set-up.log 2>&1 & set_up=$$!; \
	$(VENV)/bin/python -m pytest -m "not alone and not live" -n $(WORKERS) --dist loadgroup || status=1; \
	$(VENV)/bin/python -m pytest -m "alone and not live" || status=1; \
	wait $$set_up || { cat $(VENV)/versions-set-up.log; status=1; }; \
	$(MAKE) --no-print-directory test-versions || status=1; \
	exit $$status

# The inner loop: pure and in-process tests only, no process started.
test-fast: $(READY)
	$(VENV)/bin/python -m pytest $(FAST_TIER) -n $(FAST_WORKERS)

# The fast tier on every other Python 3.11+ found here, each in its own .venv-3.N (tests/versions.py).
test-versions: $(READY)
	$(VENV)/bin/python -m tests.versions $(FAST_TIER)

bench: $(READY)
	bin/bench

soak: $(READY)
	bin/soak

clean:
	rm -rf $(VENV) .venv-3.* *.egg-info .pytest_cache .hypothesis
