# Entry point: `make test` (every check), which sets itself up on a fresh Debian machine. It installs
# Debian's slapd and ldap-utils when they are missing, which needs root (or sudo): it says so first.
# `make lint` runs the static checks alone. `make demo` runs the whole job on the built-in lab: it
# needs no root, using slapd when installed and otherwise the lab's LDIF on ldap3's mock.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint typecheck pytest system-deps venv demo clean soak bench

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The LDAP tests start a real OpenLDAP slapd; install it when absent (CI runs as root).
system-deps:
	@if ! command -v slapd >/dev/null && ! test -x /usr/sbin/slapd || ! command -v ldapadd >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  if [ -n "$$SUDO" ] && ! command -v sudo >/dev/null; then \
	    echo "make test needs slapd and ldap-utils; installing them needs root: run 'apt-get install slapd ldap-utils' as root, or make test as root" >&2; \
	    exit 1; \
	  fi; \
	  echo "slapd and ldap-utils are missing; installing them with apt-get needs root$${SUDO:+ (using sudo: it may ask for your password)}"; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends slapd ldap-utils >/dev/null; \
	fi

LINT_PATHS := xesync tests $(wildcard bench)

lint: venv
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy --strict xesync

pytest: venv system-deps
	$(BIN)/pytest -p no:cacheprovider

test: lint pytest

# The engine state machine at length (tests/reliability/README.md): about 5 minutes.
soak: venv
	HYPOTHESIS_PROFILE=soak $(BIN)/pytest -p no:cacheprovider -q --timeout=3600 tests/unit/test_engine_machine.py

# The scale benchmark (bench/README.md): xesync against a TMSXE-style poller; results in bench/results/.
bench: venv system-deps
	$(BIN)/python -m bench.run --rooms 100,1000,5000 --meetings 10,4,1

demo: venv
	$(BIN)/xesync demo

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
