"""Starts the tritonserver bundled in the `nvidia-pytriton` wheel (0.5.0 ships server 2.41.0; CPU only,
Python backend only) as a plain subprocess on loopback, and waits until it serves a model.

What the wheel needs that its own launcher (pytriton.Triton) does behind the scenes:
- the Python backend stub for this interpreter's minor version next to libtriton_python.so: the wheel
  keeps one stub per version apart, so `backend_directory()` assembles a backends folder of links;
- the venv's bin first on PATH: the stub embeds Python and finds its prefix (so the venv's
  site-packages, numpy and onnxruntime) from the `python` on PATH;
- LD_LIBRARY_PATH with the wheel's nvidia_pytriton.libs (libtritonserver and what it links) and this
  interpreter's libpython directory ahead of the system one: the stub links libpython3.11.so.1.0 and
  would otherwise load a distro libpython3.11 of another build;
- a shared-memory prefix unique per server, so that two servers on one machine (tests running side by
  side) do not open each other's /dev/shm regions.
"""

import importlib.util
import os
import subprocess
import sys
import sysconfig
import time
import uuid
from pathlib import Path

import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from reelvec.models import VISUAL_MODEL_NAME

# located without importing pytriton, whose import takes a third of a second
_PYTRITON = Path(importlib.util.find_spec("pytriton").submodule_search_locations[0]).resolve()
TRITON_HOME = _PYTRITON / "tritonserver"
TRITONSERVER = TRITON_HOME / "bin" / "tritonserver"
TRITON_LIBS = _PYTRITON.parent / "nvidia_pytriton.libs"
PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
STUB = TRITON_HOME / "python_backend_stubs" / PYTHON_VERSION / "triton_python_backend_stub"


# The Python backend's shared-memory region per model instance on a GPU, where the batcher sends up
# to 128 frames (19 MB of uint8) at once: sized so that it does not grow on every call. Each instance
# maps its own region in /dev/shm (Docker's default /dev/shm of 64 MB is too small for two).
GPU_SHM_BYTES = 256 * 2**20


class TritonNotReady(RuntimeError):
    pass


def backend_directory(work_dir: Path) -> Path:
    """`<work_dir>/backends`: the wheel's Python backend plus the stub for this interpreter."""
    if not STUB.exists():
        raise FileNotFoundError(f"nvidia-pytriton ships no Python backend stub for Python {PYTHON_VERSION}")
    python = Path(work_dir) / "backends" / "python"
    python.mkdir(parents=True, exist_ok=True)
    sources = [*sorted((TRITON_HOME / "backends" / "python").glob("*.*")), STUB]
    for source in sources:
        link = python / source.name
        if not (link.is_symlink() and link.resolve() == source.resolve()):
            link.unlink(missing_ok=True)
            link.symlink_to(source)
    return python.parent


def environment() -> dict:
    """This process's environment with the venv's bin first on PATH and the wheel's libraries plus
    this interpreter's libpython first on LD_LIBRARY_PATH (see the module docstring)."""
    env = dict(os.environ)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([venv_bin, *[p for p in env.get("PATH", "").split(os.pathsep) if p]])
    libs = [str(TRITON_LIBS), sysconfig.get_config_var("LIBDIR")]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        [*libs, *[p for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]]
    )
    return env


def command(
    model_repository: Path,
    work_dir: Path,
    grpc_port: int,
    http_port: int,
    metrics_port: int,
    *,
    host: str = "127.0.0.1",
    models: tuple[str, ...] = (VISUAL_MODEL_NAME,),
    model_control_mode: str = "explicit",
    shm_bytes: int = 16 * 1024 * 1024,
    log_verbose: int = 0,
    config_name: str = "",
) -> tuple[list[str], dict]:
    """argv and environment that start the bundled tritonserver serving `models` from
    `model_repository`. Everything listens on `host` only; `work_dir` holds the assembled backends.
    `config_name` NAME serves each model's configs/NAME.pbtxt instead of its config.pbtxt."""
    argv = [
        str(TRITONSERVER),
        f"--model-repository={Path(model_repository).resolve()}",
        f"--backend-directory={backend_directory(work_dir)}",
        f"--model-control-mode={model_control_mode}",
        # a model that cannot load must fail the start, and readiness must mean "models ready"
        "--exit-on-error=true",
        "--strict-readiness=true",
        "--disable-auto-complete-config",
        f"--grpc-address={host}",
        f"--grpc-port={grpc_port}",
        f"--http-address={host}",
        f"--http-port={http_port}",
        f"--metrics-address={host}",
        f"--metrics-port={metrics_port}",
        "--allow-gpu-metrics=false",
        "--allow-sagemaker=false",
        "--allow-vertex-ai=false",
        f"--backend-config=python,shm-region-prefix-name=reelvec-{uuid.uuid4().hex[:12]}",
        # one clip of 64 frames is 9.6 MB of uint8: start big enough not to grow on the first call
        f"--backend-config=python,shm-default-byte-size={shm_bytes}",
        f"--log-verbose={log_verbose}",
    ]
    if config_name:
        argv.append(f"--model-config-name={config_name}")
    if model_control_mode == "explicit":
        argv += [f"--load-model={name}" for name in models]
    return argv, environment()


def start(argv: list[str], env: dict, log_path: Path) -> subprocess.Popen:
    """Runs tritonserver in its own session, so that a terminal's Ctrl-C reaches only its supervisor
    (which stops it in order); its output goes to `log_path`."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_ready(
    url: str,
    models: tuple[str, ...] = (VISUAL_MODEL_NAME,),
    timeout: float = 120.0,
    process: subprocess.Popen | None = None,
) -> None:
    """Blocks until the server at `url` (host:grpc_port) is ready and serves every model in `models`.
    Raises TritonNotReady on timeout, or at once when `process` has exited."""
    deadline = time.monotonic() + timeout
    client = grpcclient.InferenceServerClient(url)
    last = "no answer"
    try:
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise TritonNotReady(f"tritonserver exited with code {process.returncode} before ready")
            try:
                remaining = max(0.1, deadline - time.monotonic())
                ready = client.is_server_ready(client_timeout=remaining) and all(
                    client.is_model_ready(m, client_timeout=remaining) for m in models
                )
                if ready:
                    return
                last = "server up, models loading"
            except InferenceServerException as exc:
                last = str(exc)
            time.sleep(0.25)
    finally:
        client.close()
    raise TritonNotReady(f"tritonserver at {url} not ready after {timeout:g}s: {last}")


def main(argv=None) -> None:
    """`python -m reelvec.triton ARGS`: tritonserver with the Python backend stub of this interpreter
    (the CPU image's entrypoint, deploy/triton/Dockerfile). ARGS go to tritonserver as they are."""
    args = sys.argv[1:] if argv is None else list(argv)
    work = Path(os.environ.get("TMPDIR", "/tmp")) / "reelvec-triton"
    command = [str(TRITONSERVER), f"--backend-directory={backend_directory(work)}", "--allow-gpu-metrics=false", *args]
    os.execve(command[0], command, environment())


if __name__ == "__main__":
    main()
