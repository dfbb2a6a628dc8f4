# Two commands for a fresh clone: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install lint format browser-deps clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "PolicyCoder needs Python 3.11 or newer; run make PYTHON=python3.11 …")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the pinned requirements change.
$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

.local-secret-key:
	$(BIN)/python -c "import secrets; print(secrets.token_urlsafe(50))" > $@

run: install .local-secret-key
	DEBUG=1 SECRET_KEY="$$(cat .local-secret-key)" $(BIN)/python manage.py migrate --no-input
	DEBUG=1 SECRET_KEY="$$(cat .local-secret-key)" $(BIN)/python manage.py load_demo
	@echo "Serving on http://$(HOST):$(PORT)/  (log in at http://$(HOST):$(PORT)/accounts/login/)"
	DEBUG=1 SECRET_KEY="$$(cat .local-secret-key)" $(BIN)/python manage.py runserver $(HOST):$(PORT)

# Uses DATABASE_URL when set (e.g. postgres://postgres@127.0.0.1:5432/test), SQLite otherwise.
# Tests run with DEBUG off, which needs a SECRET_KEY; a throwaway one unless you set yours.
test: install
	SECRET_KEY="$${SECRET_KEY:-test-only-secret-key-not-for-production}" $(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles .pytest_cache
