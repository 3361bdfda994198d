# Coachbook: `make run` serves the app with demo data; `make test` runs the whole suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PYTEST := $(PY) -m pytest -p no:cacheprovider

.PHONY: install run run-stripe test test-sqlite test-postgres lint format bench clean screenshots

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Web, a Celery worker and beat together (scripts/run_dev.py); no Redis needed; Ctrl-C stops all.
run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	$(PY) scripts/run_dev.py 127.0.0.1:8000

# The same with card payments (docs/payments.md): PAYMENT_GATEWAY=stripe against localstripe on
# 127.0.0.1:8420 (in memory, webhooks to the app); migrates, seeds, then runs all three.
run-stripe: install
	$(PY) scripts/run_stripe.py 127.0.0.1:8000

# The whole suite on SQLite (browser tests included), then again on a throwaway PostgreSQL
# cluster where constraints, row locks and concurrency are real (browser tests excluded there:
# they exercise pages, not the database).
test: install test-sqlite test-postgres

# PostgreSQL-only tests (marked `postgres`) are left to the second pass rather than skipped.
test-sqlite: install
	$(PYTEST) -m "not postgres"

test-postgres: install
	$(PY) -m scripts.pgcluster -- $(PYTEST) -m "not browser"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Each prints its figures and the ratio to its floor (docs/performance.md); bench/settings.py
# and bench/floor_urls.py are the HTTP benches' settings, not benchmarks.
BENCHES := bookable_starts book_race expire_stale feed pages http_throughput

bench: install
	@failed=""; for name in $(BENCHES); do echo "== bench/$$name.py"; \
		$(PY) bench/$$name.py || failed="$$failed $$name"; done; \
	if [ -n "$$failed" ]; then echo "FAILED:$$failed"; exit 1; fi

# Full-page PNGs of every page per role at 1280 and 375 px, plus screenshots/index.html
# (docs/screenshots.md); needs Chromium, exits 2 without it.
screenshots: install
	$(PY) scripts/screenshots.py

clean:
	rm -rf $(VENV) staticfiles db.sqlite3
