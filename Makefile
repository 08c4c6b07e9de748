# Entry points: `make test` (every check) and `make demo` (the main job on the built-in lab).
# Both set themselves up on a fresh Debian machine: nothing is installed by hand.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint typecheck pytest system-deps venv clean

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
	  echo "installing slapd and ldap-utils"; \
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

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
