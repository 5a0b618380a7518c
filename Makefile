# Thin entry points; the logic lives in stack/*.sh. `make run` shows live metric events,
# `make test` runs the whole suite; both set up what they need on a fresh Debian/Ubuntu machine:
# apt packages that are missing (stack/prerequisites.sh), then a project virtualenv (.venv)
# installed from the lock file (constraints.txt). Nothing is installed into the system Python.
SYSTEM_PYTHON ?= /usr/bin/python3
VENV ?= .venv
PYTHON := $(VENV)/bin/python
PYTEST_ARGS ?=
KAFKA_NODES ?= 1
export KAFKA_NODES

.PHONY: install prerequisites stack-up stack-down test unit lint run bench lock
# Prerequisites run in order: the stack needs the installed package (loginmetrics topics).
.NOTPARALLEL:

prerequisites:
	SYSTEM_PYTHON=$(SYSTEM_PYTHON) bash stack/prerequisites.sh $(if $(filter test lint,$(MAKECMDGOALS)),test)

# The virtualenv is (re)built when the dependencies or the lock change.
$(VENV)/.installed: pyproject.toml constraints.txt
	@$(MAKE) --no-print-directory prerequisites
	test -x $(PYTHON) || $(SYSTEM_PYTHON) -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Refresh the lock from pyproject.toml's ranges (newest versions that fit), then reinstall.
lock: $(VENV)/.installed
	$(PYTHON) -m pip install -q pip-tools
	$(VENV)/bin/pip-compile --quiet --upgrade --extra dev --extra bench --strip-extras --no-emit-index-url \
		--no-emit-find-links --output-file constraints.txt pyproject.toml
	$(MAKE) --no-print-directory install

stack-up: install
	bash stack/kafka.sh start
	bash stack/redis.sh start
	$(VENV)/bin/loginmetrics topics create $(if $(filter-out 1,$(KAFKA_NODES)),--replication-factor 3 --min-insync-replicas 2)

stack-down:
	bash stack/kafka.sh stop
	bash stack/redis.sh stop

# pytest exits 5 when it collected no tests; that is not a failure here.
test: install prerequisites stack-up
	$(PYTHON) -m pytest $(PYTEST_ARGS) || { rc=$$?; [ $$rc -eq 5 ] && echo "pytest: no tests collected" || exit $$rc; }

# The fast tier: every test that needs neither Kafka nor Redis (tests marked integration or
# reliability are the ones that do), so no stack is started.
unit: install
	$(PYTHON) -m pytest -m "not integration and not reliability" $(PYTEST_ARGS)

lint: install
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy
	$(VENV)/bin/lint-imports --no-cache

# The demo prints the live page's address (http://127.0.0.1:8080/; RUN_DEMO_HTTP_PORT moves it).
run: install stack-up
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash stack/run-demo.sh

bench: install stack-up
	$(PYTHON) -m pip install -q -c constraints.txt -e '.[dev,bench]'
	$(PYTHON) -m bench
