"""`reelvec up`: Triton and every service as its own process on 127.0.0.1.

Children run in their own session so a terminal's Ctrl-C reaches only this supervisor, which then
stops them in dependency order (gateway first, Triton last) and lets each drain. PR_SET_PDEATHSIG
makes the kernel stop a child if the supervisor itself dies without cleaning up. A child that
crashes is started again on the same ports and data (Stack.supervise); only a crash loop stops the
stack.
"""

import asyncio
import ctypes
import dataclasses
import json
import os
import random
import signal
import socket
import sys
import time
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from reelvec import config, model_repository, triton
from reelvec.models import triton_repository

READY_TIMEOUT = float(os.environ.get("REELVEC_READY_TIMEOUT", "300"))
STOP_TIMEOUT = 20.0
MAX_RESTARTS, CRASH_WINDOW = 5, 60.0


_handed_out: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range. A port from bind(0) is in that
    range, and the kernel may give it to an outgoing connection before the service that was
    told to listen on it has started (seen as "Address already in use" with two stacks up)."""
    low, _ = _ephemeral_range()
    candidates = list(range(max(1024, low - 12000), low)) if low > 2048 else []
    random.shuffle(candidates)
    for port in candidates:
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket() as s:  # no room below the range: let the kernel pick
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def encoder_names(replicas: int) -> list[str]:
    """The first keeps the plain name that stack.json readers and the logs have always had."""
    if replicas < 1:
        raise ValueError(f"encoder replicas must be at least 1, not {replicas}")
    return ["encoder", *(f"encoder-{i}" for i in range(2, replicas + 1))]


def replicas_target(addresses: list[str]) -> str:
    """A gRPC target for one or several "IP:port" addresses; reelvec.channels balances a channel
    to several round-robin."""
    return addresses[0] if len(addresses) == 1 else "ipv4:" + ",".join(addresses)


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclasses.dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    address: str  # gRPC address probed for readiness
    metrics_port: int = 0
    process: asyncio.subprocess.Process | None = None


@dataclasses.dataclass
class Stack:
    """The processes of one stack and their addresses. Tests start the same stack as `reelvec up`."""

    data_dir: Path
    gateway_port: int = 50051
    web_port: int = 8080
    # encoder processes, "encoder", "encoder-2", ...; the gateway spreads its calls over them
    encoder_replicas: int = 1
    # the models on this machine's GPU: Triton serves configs/python_gpu.pbtxt (PyTorch on CUDA in
    # its Python backend), the transcriber runs Whisper on CUDA in float16
    gpu: bool = False
    children: list[Child] = dataclasses.field(default_factory=list)
    _stopping: bool = False

    @property
    def repository(self) -> Path:
        """The Triton model repository this stack serves (reelvec.model_repository)."""
        return self.data_dir / "triton" / "models"

    @property
    def gateway(self) -> str:
        return f"127.0.0.1:{self.gateway_port}"

    @property
    def web(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def plan(self) -> None:
        # The ports it was given were chosen by its caller, another process, and nothing listens on
        # them yet: free_port() would hand them out again (a test's web port went to a transcriber).
        _handed_out.update((self.gateway_port, self.web_port))
        model_repository.assemble(triton_repository(), self.repository)
        encoders = encoder_names(self.encoder_replicas)
        ports = {name: free_port() for name in (*encoders, "transcriber", "search", "regressor")}
        ports["gateway"] = self.gateway_port
        triton_ports = {k: free_port() for k in ("grpc", "http", "metrics")}
        env = dict(os.environ)
        triton_argv, triton_env = triton.command(
            self.repository, self.data_dir / "triton",
            triton_ports["grpc"], triton_ports["http"], triton_ports["metrics"],
            models=model_repository.served_models(self.repository),  # trained ones too
            config_name="python_gpu" if self.gpu else "",
            **({"shm_bytes": triton.GPU_SHM_BYTES} if self.gpu else {}),
        )
        self.children = [Child("triton", triton_argv, triton_env, f"127.0.0.1:{triton_ports['grpc']}")]
        common = ["--data-dir", str(self.data_dir)]
        encoder = ["--triton-url", f"127.0.0.1:{triton_ports['grpc']}", "--model-repository", str(self.repository)]
        flags = {
            **{name: encoder for name in encoders},
            "transcriber": ["--device", "cuda"] if self.gpu else [],
            "search": [],
            "regressor": ["--search-url", f"127.0.0.1:{ports['search']}"],
            "gateway": [
                f"--encoder-url={replicas_target([f'127.0.0.1:{ports[name]}' for name in encoders])}",
                *(f"--{name}-url=127.0.0.1:{ports[name]}" for name in ("transcriber", "search", "regressor"))
            ],
        }
        for name, extra in flags.items():
            metrics = free_port()
            service = "encoder" if name in encoders else name
            argv = [sys.executable, "-m", f"services.{service}", "--port", str(ports[name]),
                    "--metrics-port", str(metrics), *common, *extra]
            self.children.append(Child(name, argv, env, f"127.0.0.1:{ports[name]}", metrics))
        self.children[0].metrics_port = triton_ports["metrics"]
        web = [sys.executable, "-m", "services.web", "--port", str(self.web_port), "--gateway-url", self.gateway]
        self.children.append(Child("web", web, env, f"127.0.0.1:{self.web_port}"))

    def write_state(self) -> Path:
        """<data_dir>/stack.json: where each process listens, for operators and tests."""
        state = {c.name: {"address": c.address, "metrics": f"127.0.0.1:{c.metrics_port}",
                          "pid": c.process.pid if c.process else None} for c in self.children}
        path = self.data_dir / "stack.json"
        path.write_text(json.dumps(state, indent=2))
        return path

    async def _spawn(self, child: Child) -> None:
        path = self.log_path(child)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as log:
            child.process = await asyncio.create_subprocess_exec(
                *child.argv, env=child.env, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True, preexec_fn=_die_with_parent,
            )

    async def start(self) -> None:
        for child in self.children:
            await self._spawn(child)
        await asyncio.gather(*(self._wait_ready(c) for c in self.children))

    async def _wait_ready(self, child: Child) -> None:
        """Waits for `child` to serve. A child killed by a signal while starting is started once
        more: tritonserver now and then aborts at start (replicate/cog-triton#22 restarts it for the
        same reason), and after the start the supervisor would restart it anyway."""
        deadline = time.monotonic() + READY_TIMEOUT
        probe = {"triton": _triton_ready, "web": _http_ready}.get(child.name, _is_serving)
        retried = False
        while time.monotonic() < deadline:
            code = child.process.returncode
            if code is not None:
                if code < 0 and not retried:
                    retried = True
                    print(f"warning: {child.name} was killed by signal {-code} while starting; starting it "
                          f"again. The end of its log:\n{self.log_tail(child)}", file=sys.stderr, flush=True)
                    _kill_group(child)
                    await self._spawn(child)
                    continue
                raise RuntimeError(f"{child.name} exited with code {code} while starting. "
                                   f"The end of {self.log_path(child)}:\n{self.log_tail(child)}")
            if await asyncio.to_thread(probe, child.address):
                return
            await asyncio.sleep(0.5)
        raise RuntimeError(f"{child.name} did not become ready within {READY_TIMEOUT:.0f}s. "
                           f"The end of {self.log_path(child)}:\n{self.log_tail(child)}")

    def log_path(self, child: Child) -> Path:
        return self.data_dir / "logs" / f"{child.name}.log"

    def log_tail(self, child: Child, lines: int = 20) -> str:
        try:
            text = self.log_path(child).read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    async def wait_any_exit(self) -> Child:
        waits = {asyncio.ensure_future(c.process.wait()): c for c in self.children}
        done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        return waits[done.pop()]

    async def supervise(self) -> Child:
        """Restarts a child that exits, on the same ports and data, after a backoff (0.5 s,
        doubling, at most 10 s), while the others keep serving; its callers see UNAVAILABLE
        meanwhile. Returns the child that exited more than MAX_RESTARTS times within
        CRASH_WINDOW seconds: a crash loop, which restarting does not mend."""
        exits: dict[str, list[float]] = {}
        while True:
            child = await self.wait_any_exit()
            _kill_group(child)
            if self._stopping:
                return child
            now = time.monotonic()
            exits[child.name] = [t for t in exits.get(child.name, []) if now - t < CRASH_WINDOW] + [now]
            if len(exits[child.name]) > MAX_RESTARTS:
                return child
            print(f"warning: {child.name} exited with code {child.process.returncode}; restarting it",
                  file=sys.stderr, flush=True)
            await asyncio.sleep(min(0.5 * 2 ** (len(exits[child.name]) - 1), 10.0))
            if self._stopping:
                return child
            await self._spawn(child)
            self.write_state()

    async def stop(self) -> None:
        """Gateway first so no new work enters; Triton last so the encoder can drain into it."""
        self._stopping = True
        for child in reversed(self.children):
            if child.process is None or child.process.returncode is not None:
                continue
            child.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(child.process.wait(), STOP_TIMEOUT)
            except asyncio.TimeoutError:
                child.process.kill()
                await child.process.wait()
            _kill_group(child)


def _triton_ready(address: str) -> bool:
    try:
        triton.wait_ready(address, timeout=0.5)
    except triton.TritonNotReady:
        return False
    return True


def _kill_group(child: Child) -> None:
    """What a child left behind in its session: a SIGKILLed tritonserver leaves its Python backend
    stubs running, about 300 MB each, and a restart would start new ones beside them."""
    try:
        os.killpg(child.process.pid, signal.SIGKILL)  # its own session: group id == its pid
    except (ProcessLookupError, PermissionError):
        pass


def _http_ready(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}/healthz", timeout=1.0) as response:
            return response.status == 200
    except OSError:
        return False


def _is_serving(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1.0)
        except grpc.RpcError:
            return False
    return response.status == health_pb2.HealthCheckResponse.SERVING


async def _run(args) -> int:
    data_dir = config.data_dir(args.data_dir)
    stack = Stack(data_dir.resolve(), args.port, args.web_port, encoder_replicas=args.encoder_replicas, gpu=args.gpu)
    stack.plan()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    code = 0
    try:
        starting = asyncio.ensure_future(stack.start())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            starting.cancel()
            return 130
        starting.result()
        stack.write_state()
        print(f"reelvec ready: gateway at {stack.gateway}, web page at {stack.web} (logs in {stack.data_dir / 'logs'})",
              flush=True)
        if args.sample:
            from reelvec.tools import sample_corpus

            await asyncio.to_thread(sample_corpus.ensure_indexed, stack.gateway, data_dir)
        crashed = asyncio.ensure_future(stack.supervise())
        await asyncio.wait({crashed, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if crashed.done():
            child = crashed.result()
            print(f"error: {child.name} keeps exiting (code {child.process.returncode}, more than {MAX_RESTARTS} "
                  f"times in {CRASH_WINDOW:.0f} s); stopping the stack", file=sys.stderr, flush=True)
            code = 1
        else:
            crashed.cancel()
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        await stack.stop()
    return code


def main(args) -> int:
    return asyncio.run(_run(args))
