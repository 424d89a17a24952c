# KPay developer commands. The two that matter: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
BROKER_PORT ?= 9092

.PHONY: install lock run test screenshots test-crash bench bench-recovery bench-soak broker broker-stop cluster cluster-stop lint format clean

$(INSTALLED): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	touch $@

install: $(INSTALLED)

## Re-resolve every dependency within pyproject.toml's ranges into constraints.txt (the lock);
## then run `make lint test`, whose contract test names what an upgrade changed.
lock:
	rm -rf $(VENV)-lock && $(PYTHON) -m venv $(VENV)-lock
	$(VENV)-lock/bin/python -m pip install -q --upgrade pip
	$(VENV)-lock/bin/python -m pip install -q -e '.[test]'
	head -n 3 constraints.txt > constraints.new
	$(VENV)-lock/bin/python -m pip freeze --exclude-editable | grep -v '^kpay-faust' >> constraints.new
	mv constraints.new constraints.txt && rm -rf $(VENV)-lock

## Start a local Kafka (KRaft, 127.0.0.1:$(BROKER_PORT)) unless one runs there already.
broker:
	scripts/broker.sh start $(BROKER_PORT)

broker-stop:
	scripts/broker.sh stop $(BROKER_PORT)

## Three local Kafka nodes (KRaft) on 127.0.0.1:19092, 19102, 19112: replication 3, min ISR 2.
cluster:
	scripts/cluster.sh start

cluster-stop:
	scripts/cluster.sh stop

## Worker in the foreground on http://127.0.0.1:6066, with a modest demo load.
run: install broker
	scripts/run.sh

## The whole suite, integration tests included, against a throwaway broker.
test: install
	scripts/test.sh

## Screenshots of the console's main views into docs/images (a real browser, real workers).
screenshots: install
	KPAY_SCREENSHOTS=docs/images scripts/test.sh -q tests/integration/test_console.py

## The crash test alone (SIGKILL a worker mid-stream); `make test` runs it too.
test-crash: install
	scripts/test.sh -m crash tests/integration/test_crash.py

## Stepped-rate benchmark over worker counts, relay ceilings (about half an hour); results go to
## bench/results/<date>.json and docs/benchmarks.md. BENCH_ARGS="--workers 1 --rates 500" etc.
bench: install broker
	$(BIN)/python -m bench.run --broker 127.0.0.1:$(BROKER_PORT) \
		--broker-pid $$(cat .kafka/run-$(BROKER_PORT)/broker.pid) $(BENCH_ARGS)

## Recovery after a SIGKILL against history size (local stores kept vs replayed from scratch).
bench-recovery: install broker
	$(BIN)/python -m bench.recovery --broker 127.0.0.1:$(BROKER_PORT) $(BENCH_ARGS)

## A worker's memory and disk over a long run (a million payments by default, 35 minutes at
## the default rate); SOAK_ARGS="--payments 200000 --rate 600 --retention 300" etc.
bench-soak: install broker
	$(BIN)/python -m bench.soak --broker 127.0.0.1:$(BROKER_PORT) \
		--out bench/results/$$(date -u +%Y-%m-%dT%H%M%SZ)-soak.json $(SOAK_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) kpay-data .pytest_cache .ruff_cache *.egg-info
