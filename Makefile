# The two commands: `make run` and `make test` (see README.md). Each installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Empty: devstack takes PORT from the environment or .env, else 8000.
PORT ?=
# Reinstall whenever a requirements file changes.
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test install lint mypy format clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python requirements.txt requirements-dev.txt
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

install: $(STAMP)

# Web on 127.0.0.1:$PORT (default 8000) + Celery worker + beat. Without DATABASE_URL / REDIS_URL it starts an
# embedded PostgreSQL and Redis with their data under .data/. Ctrl+C stops everything.
run: $(STAMP)
	$(BIN)/python scripts/devstack.py run $(if $(PORT),--port $(PORT))

# The whole suite on DATABASE_URL / REDIS_URL when set, else on the embedded servers.
test: $(STAMP)
	DJANGO_ALLOW_ASYNC_UNSAFE=true $(BIN)/python scripts/devstack.py exec -- \
		$(BIN)/python scripts/testsuite.py $(PYTEST_ARGS)

# Style first (seconds), then the shape: templates, types, layers, tenancy. Any failing step
# fails the target. The tenancy lint accepts no unscoped query at all; the layer contracts
# name their few known exceptions (`ignore_imports` in pyproject.toml), and an entry that no
# longer matches an import fails too, so that list only shrinks.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/djlint templates --lint
	$(MAKE) --no-print-directory mypy
	$(BIN)/lint-imports --no-logo
	$(BIN)/python scripts/lint_tenancy.py

# mypy (django-stubs) on crm/ and every services/selectors module or package of the apps,
# found here so a module split into a package or a new app stays covered.
DOMAIN_APPS := contacts pipeline ai compliance
MYPY_PATHS = crm $(shell find $(DOMAIN_APPS) -path '*/migrations' -prune -o \
	\( -name services -o -name services.py -o -name selectors -o -name selectors.py \) -print | sort)

mypy: $(STAMP)
	$(BIN)/mypy $(MYPY_PATHS)

format: $(STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

# Removes the embedded servers' data (database, Redis, beat schedule) and caches; keeps .venv.
clean:
	rm -rf .data .pytest_cache
