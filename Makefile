# KPay developer commands. The two that matter: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
QUIX_VENV := $(VENV)-quix
BROKER_PORT ?= 9092

.PHONY: install lock lock-quix run test screenshots test-crash bench bench-quix bench-recovery bench-soak broker broker-stop cluster cluster-stop lint format clean

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

## The whole suite, integration tests included, against a throwaway broker (with .venv-quix for
## the Quix Streams side of the benchmark, whose pipeline is tested too).
test: install $(QUIX_VENV)/.installed
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

## KPay and the same pipeline in Quix Streams, interleaved on the same broker (about 20 minutes);
## Quix Streams runs in its own virtualenv, pinned by bench/quix-constraints.txt.
$(QUIX_VENV)/.installed: bench/quix-constraints.txt
	test -x $(QUIX_VENV)/bin/python || $(PYTHON) -m venv $(QUIX_VENV)
	$(QUIX_VENV)/bin/python -m pip install -q --upgrade pip
	$(QUIX_VENV)/bin/python -m pip install -q -c bench/quix-constraints.txt quixstreams
	touch $@

bench-quix: install broker $(QUIX_VENV)/.installed
	$(BIN)/python -m bench.quix --broker 127.0.0.1:$(BROKER_PORT) \
		--broker-pid $$(cat .kafka/run-$(BROKER_PORT)/broker.pid) \
		--quix-python $(QUIX_VENV)/bin/python $(BENCH_ARGS)

lock-quix:
	rm -rf $(QUIX_VENV)-lock && $(PYTHON) -m venv $(QUIX_VENV)-lock
	$(QUIX_VENV)-lock/bin/python -m pip install -q quixstreams
	head -n 2 bench/quix-constraints.txt > bench/quix-constraints.new
	$(QUIX_VENV)-lock/bin/python -m pip freeze >> bench/quix-constraints.new
	mv bench/quix-constraints.new bench/quix-constraints.txt && rm -rf $(QUIX_VENV)-lock

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
	rm -rf $(VENV) $(QUIX_VENV) kpay-data .pytest_cache .ruff_cache *.egg-info
