# ShrivenQuant developer entry points. `make up` and `make test` are the two that matter.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install up test bench lint structure soak image clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "ShrivenQuant needs Python 3.11+, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	@touch $(STAMP)

up: install
	$(BIN)/sq up

test: install
	$(BIN)/ruff check .
	$(BIN)/pytest

bench: install
	$(BIN)/sq bench all --table

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

# The house rules (layers events < store < processors < projections < gateway, no import cycle, no module
# over 450 lines): every violation as file:line; tests/test_structure.py runs the same check.
structure: install
	$(BIN)/python -m tests.structure

# The soak (tests/soak) runs 30 minutes unless SQ_SOAK_SECONDS says otherwise; its JSON report goes to
# SQ_SOAK_REPORT (default bench-results/soak.json). The other slow fault tests run with it.
soak: install
	SQ_SOAK_SECONDS=$${SQ_SOAK_SECONDS:-1800} $(BIN)/pytest -m slow -rA tests

# The container image from deploy/Dockerfile: docker when an engine answers, else buildah with a
# Debian-bookworm Python base made once by debootstrap (deploy/build-image.sh says how; SQ_IMAGE names it).
image:
	deploy/build-image.sh

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .mypy_cache
