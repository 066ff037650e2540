# Two commands on a fresh machine:
#   make quick   set up .venv, run the `quick` suite into ./bench.db and print the report
#   make test    set up .venv, lint, and run the tests
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
EXTRAS ?= torch,jax,onnx,opencl,mpi,grpc,postgres,web,dev

.PHONY: quick test lint bench-overhead bench-accuracy clean

$(BIN)/bench: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[$(EXTRAS)]"
	touch $@

quick: $(BIN)/bench
	$(BIN)/bench run --suite quick

lint: $(BIN)/bench
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -q --durations=30

bench-overhead: $(BIN)/bench
	$(BIN)/python benchmarks/harness_overhead.py

bench-accuracy: $(BIN)/bench
	$(BIN)/python benchmarks/engine_accuracy.py

clean:
	rm -rf $(VENV) bench.db bench-runs .pytest_cache
