# supex — two commands set everything up: `make run` and `make test`.
VENV   ?= .venv
PYTHON ?= python3
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: install run demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

run: install  ## the gateway on the embedded SQLite store, with the example configuration
	@mkdir -p -m 700 var
	@test -f var/data.key || $(BIN)/supex keys generate --output var/data.key
	$(BIN)/supex check-config config.example.toml
	$(BIN)/supex serve --config config.example.toml

demo: install  ## a one-minute tour: the gateway and simulated systems together (see README)
	$(BIN)/supex demo

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: install
	$(BIN)/python benchmarks/bench_validate.py
	$(BIN)/python benchmarks/bench_map.py
	$(BIN)/python benchmarks/bench_map_memory.py
	$(BIN)/python benchmarks/bench_policy.py
	$(BIN)/python benchmarks/bench_ingest.py
	$(BIN)/python benchmarks/bench_fanout.py
	$(BIN)/python benchmarks/bench_store_path.py
	$(BIN)/python benchmarks/bench_log.py
	$(BIN)/python benchmarks/bench_proofs.py
	$(BIN)/python benchmarks/bench_scale.py
	$(BIN)/python benchmarks/crash.py
	$(BIN)/python benchmarks/outage.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
