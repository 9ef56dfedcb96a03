"""Client channels between services: retry policy in the service config, deadlines on every call,
and upstream failures turned into statuses that name the service that failed."""

import json
import time

import grpc

from reelvec import errors, limits
from reelvec.server import REQUEST_ID_KEY, caller_deadline, request_id
from reelvec.tls import TLS

# Transparent retries only for UNAVAILABLE (connection refused / not yet up); every internal RPC of
# reelvec is idempotent (upsert by id, pure functions of their input), so a retry is safe.
# round_robin: a target that names several replicas ("ipv4:10.0.0.1:50052,10.0.0.2:50052", or a
# DNS name with many records) gets a connection to each and its calls spread over them; the default
# pick_first would send every call to the first that answers. One address behaves as before.
_SERVICE_CONFIG = json.dumps(
    {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


def open_channel(address: str, tls: TLS = TLS()) -> grpc.aio.Channel:
    """Plaintext, or TLS when `tls` names a CA (and mutual TLS when it has a certificate too)."""
    options = [*limits.GRPC_OPTIONS, ("grpc.service_config", _SERVICE_CONFIG), ("grpc.enable_retries", 1)]
    credentials = tls.channel_credentials()
    if credentials is not None:
        return grpc.aio.secure_channel(address, credentials, options=options)
    return grpc.aio.insecure_channel(address, options=options)


# Statuses passed through unchanged: they describe the caller's input, not the upstream's health.
_PASS_THROUGH = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}


class Upstream(errors.ReelvecError):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


async def call(what: str, method, request, timeout: float):
    """Calls `method` with a deadline, never later than our own caller's, and the current request
    id; maps failures for our caller."""
    metadata = ((REQUEST_ID_KEY, request_id.get()),) if request_id.get() else None
    deadline = caller_deadline.get()
    if deadline is not None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise errors.DeadlineExceeded(f"the caller's deadline passed before {what} was called")
        timeout = min(timeout, left)
    try:
        return await method(request, timeout=timeout, metadata=metadata)
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            if deadline is not None and time.monotonic() >= deadline - 0.001:
                raise errors.DeadlineExceeded(f"{what} did not answer before the caller's deadline") from None
            raise Upstream(
                grpc.StatusCode.UNAVAILABLE, f"{what} did not answer within {timeout:g}s"
            ) from None
        raise upstream(what, code, exc.details()) from None


def upstream(what: str, code: grpc.StatusCode, details: str) -> Upstream:
    """The error for our caller when `what` answered `code`."""
    if code in _PASS_THROUGH:
        return Upstream(code, details)
    return Upstream(grpc.StatusCode.UNAVAILABLE, f"{what} unavailable: {code.name}: {details}")
