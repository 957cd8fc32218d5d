# tuscam — the README's commands. `make run` serves the app; `make test` runs every test.
VENV    := .venv
BIN     := $(VENV)/bin
PYTHON  ?= python3
HOST    ?= 127.0.0.1
PORT    ?= 8000
export HOST PORT

.PHONY: run cluster test lint format bench setup venv frontend db system-deps clean

run: setup  ## set up, then serve on $(HOST):$(PORT) with gunicorn
	@echo "tuscam on http://$(HOST):$(PORT)/ (Ctrl-C stops it)"
	$(BIN)/gunicorn -c gunicorn.conf.py

cluster: venv frontend system-deps  ## three nodes, PostgreSQL, SeaweedFS, nginx on $(HOST):$(PORT)
	$(BIN)/python scripts/cluster.py --host $(HOST) --port $(PORT)

test: setup system-deps  ## set up, then run every test
	$(BIN)/pytest $(PYTEST_ARGS)

lint:  venv node_modules/.installed  ## ruff, mypy (all code; strict on app/tus and services), Biome
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	npm run lint

format: venv node_modules/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
	npm run format

bench: setup  ## benchmarks with their baselines (see bench/README.md)
	$(BIN)/python -m bench

setup: venv frontend db

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

frontend: app/static/dist/.vite/manifest.json
app/static/dist/.vite/manifest.json: node_modules/.installed vite.config.js $(wildcard frontend/*)
	npm run build --silent

db: venv
	$(BIN)/tuscam init-db
	$(BIN)/tuscam ensure-admin

system-deps:  ## Chromium and PostgreSQL from Debian packages, when missing
	@scripts/system-deps.sh

clean:
	rm -rf $(VENV) node_modules app/static/dist
