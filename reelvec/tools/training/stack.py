"""What the training commands need from a running stack: where its processes listen (from
`<data-dir>/stack.json`, written by `reelvec up`) and a re-embed run to its end."""

import json
import time
from pathlib import Path

from reelvec.v1 import gateway_pb2

POLL_SECONDS = 1.0
CALL_TIMEOUT = 60.0
Status = gateway_pb2.ReembedStatus


def address(data_dir: Path, process: str) -> str:
    state = Path(data_dir) / "stack.json"
    if not state.exists():
        raise ValueError(f"no {state}: start the stack with `reelvec up --data-dir {data_dir}` first")
    return json.loads(state.read_text())[process]["address"]


def wait(stub, progress=None, timeout: float = 24 * 3600) -> gateway_pb2.ReembedStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = stub.GetReembed(gateway_pb2.GetReembedRequest(), timeout=CALL_TIMEOUT)
        if status.state in (Status.DONE, Status.FAILED) or time.monotonic() > deadline:
            return status
        if progress:
            progress(status)
        time.sleep(POLL_SECONDS)


def reembed(stub, progress=None, **request) -> dict:
    """Starts a re-embed (gateway_pb2.ReembedRequest fields) and waits for it; the report's part."""
    stub.Reembed(gateway_pb2.ReembedRequest(**request), timeout=CALL_TIMEOUT)
    status = wait(stub, progress)
    return {"reembed": Status.State.Name(status.state), "collection": status.collection, "error": status.error}
