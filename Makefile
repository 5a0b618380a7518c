# Thin entry points; the logic lives in stack/*.sh. `make run` shows live metric events,
# `make test` runs the whole suite; both set up what they need on a fresh machine.
PYTHON ?= python3
PYTEST_ARGS ?=

.PHONY: install ensure-installed stack-up stack-down test lint run bench
# Prerequisites run in order: the stack needs the installed packages (create_topics.py).
.NOTPARALLEL:

install:
	$(PYTHON) -m pip install -e '.[dev]'

# Installs only when the loginmetrics command is missing.
ensure-installed:
	@command -v loginmetrics >/dev/null 2>&1 || $(MAKE) install

stack-up:
	bash stack/kafka.sh start
	bash stack/redis.sh start
	$(PYTHON) stack/create_topics.py

stack-down:
	bash stack/kafka.sh stop
	bash stack/redis.sh stop

# pytest exits 5 when it collected no tests; that is not a failure here.
test: ensure-installed stack-up
	$(PYTHON) -m pytest $(PYTEST_ARGS) || { rc=$$?; [ $$rc -eq 5 ] && echo "pytest: no tests collected" || exit $$rc; }

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy

run: ensure-installed stack-up
	bash stack/run-demo.sh

bench: ensure-installed stack-up
	$(PYTHON) -m bench
