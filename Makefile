# Ketenhub: `make run` starts the demo, `make test` runs every check CI runs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit e2e clean deps-system bench bench-quick deps-bench soak deps-deploy deps-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test,postgres]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/ketenhub demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

# The whole suite on SQLite, then every test that touches the database again on a
# throw-away PostgreSQL cluster (tests/conftest.py): a missing server fails, not skips.
test: $(STAMP) deps-deploy deps-test lint typecheck
	KETENHUB_TEST_REQUIRE_POSTGRES=1 $(BIN)/pytest -q
	KETENHUB_TEST_DATABASE=postgresql KETENHUB_TEST_REQUIRE_POSTGRES=1 $(BIN)/pytest -q

# PostgreSQL's server programs for the tests' cluster; the package's own cluster is not used.
deps-test:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { $(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; }

# tests/deploy run the real tools (Debian's): nginx, docker-compose (its `config` checks
# deploy/compose.yaml without an engine), systemd-analyze and openssl. kubectl comes with
# the test extra (pyproject.toml).
deps-deploy:
	@(for t in nginx docker-compose systemd-analyze openssl; do \
		PATH="$$PATH:/usr/sbin:/sbin" command -v $$t >/dev/null || exit 1; done) || { \
		$(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q --no-install-recommends nginx docker-compose systemd openssl; }

# Soak (tests/soak): 10 minutes of mixed load with faults injected; prints its figures.
# `make test` runs the same test for 15 s.
soak: $(STAMP)
	KETENHUB_SOAK_SECONDS=600 $(BIN)/pytest -q -s tests/soak

# Benchmarks (bench/README.md): not part of `make test`; loopback only, bounded in time.
BENCH_STAMP := $(VENV)/.bench-installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,postgres,bench]'
	# Declares Python >= 3.14, yet is a ctypes wrapper that runs on 3.11: OPA's baseline.
	$(BIN)/pip install --quiet --ignore-requires-python 'opa-golib-python-bindings==0.4.4'
	touch $(BENCH_STAMP)

deps-bench:
	@command -v wrk >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q wrk; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { $(SUDO) apt-get update -q && \
		$(SUDO) apt-get install -y -q postgresql; }

bench: $(BENCH_STAMP) deps-bench
	$(BIN)/python -m bench

bench-quick: $(BENCH_STAMP) deps-bench
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
