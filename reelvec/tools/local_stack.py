"""`reelvec up` as a child process, for tests, benchmarks and load tests: start, wait for the
ready line, call the CLI against it, restart on the same data directory, stop."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from reelvec.tools import client

READY_TIMEOUT = 600


class RunningStack:
    def __init__(self, data_dir: Path, port: int, up_args: tuple[str, ...] = (), **env: str):
        """`up_args`: more flags for `reelvec up` (--encoder-replicas 2)."""
        from reelvec.tools.launcher import free_port

        self.data_dir = data_dir
        self.env = env
        self.up_args = tuple(up_args)
        self.port = port
        self.gateway = f"127.0.0.1:{port}"
        self.web_port = free_port()
        self.web = f"http://127.0.0.1:{self.web_port}"
        self.process = None
        self.output: list[str] = []

    def start(self) -> None:
        env = dict(os.environ, **self.env)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reelvec.tools.cli", "up", "--data-dir", str(self.data_dir), "--port", str(self.port),
             "--web-port", str(self.web_port), *self.up_args],
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
                raise RuntimeError("reelvec up did not become ready:\n" + "".join(self.output))

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
            [sys.executable, "-m", "reelvec.tools.cli", *args, "--gateway", self.gateway],
            capture_output=True, text=True, timeout=600,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"reelvec {' '.join(args)} failed: {result.stderr}")
        return result

    def state(self) -> dict[str, dict]:
        """<data_dir>/stack.json: address, metrics address and pid of Triton and each service."""
        return json.loads((self.data_dir / "stack.json").read_text())

    def pids(self) -> dict[str, int]:
        return {name: entry["pid"] for name, entry in self.state().items()}
