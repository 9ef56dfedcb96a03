"""A small synchronous client of the public Gateway API, used by the CLI and the launcher."""

import json
import os
from pathlib import Path

import grpc

from reelvec import limits
from reelvec.tls import TLS
from reelvec.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc, regressor_pb2

DEFAULT_GATEWAY = "127.0.0.1:50051"
STREAM_ABOVE_BYTES = 2 * 2**20  # larger files go through IndexStream in chunks of this size
INDEX_TIMEOUT = 900.0
QUERY_TIMEOUT = 120.0


def gateway_address(explicit: str | None = None) -> str:
    return explicit or os.environ.get("REELVEC_GATEWAY") or DEFAULT_GATEWAY


class _ApiKey(grpc.UnaryUnaryClientInterceptor, grpc.StreamUnaryClientInterceptor):
    """Adds `authorization: Bearer <key>` to every call (services/gateway/auth.py)."""

    def __init__(self, key: str):
        self.metadata = (("authorization", f"Bearer {key}"),)

    def _details(self, details):  # grpc hands interceptors a namedtuple
        return details._replace(metadata=(*(details.metadata or ()), *self.metadata))

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)


def connect(address: str, api_key: str | None = None) -> gateway_pb2_grpc.GatewayStub:
    """`api_key`: else $REELVEC_API_KEY; none needed while the gateway has no keys file.
    TLS when $REELVEC_TLS_CA names the CA of the gateway's certificate; with $REELVEC_TLS_CERT and
    $REELVEC_TLS_KEY too, mutual TLS (reelvec/tls.py)."""
    env = {name: os.environ.get(f"REELVEC_TLS_{name.upper()}", "") for name in ("cert", "key", "ca")}
    credentials = TLS(**env).channel_credentials()
    if credentials is not None:
        channel = grpc.secure_channel(address, credentials, options=limits.GRPC_OPTIONS)
    else:
        channel = grpc.insecure_channel(address, options=limits.GRPC_OPTIONS)
    api_key = api_key or os.environ.get("REELVEC_API_KEY")
    if api_key:
        channel = grpc.intercept_channel(channel, _ApiKey(api_key))
    return gateway_pb2_grpc.GatewayStub(channel)


def metadata_from_manifest(entry: dict) -> common_pb2.VideoMetadata:
    author = entry.get("author") or {}
    metadata = common_pb2.VideoMetadata(
        id=str(entry.get("id") or ""),
        caption=entry.get("caption") or "",
        hashtags=[str(t).lstrip("#") for t in entry.get("hashtags") or []],
        created_at=int(entry.get("created_at") or 0),
        author=common_pb2.AuthorStats(
            id=str(author.get("id") or ""),
            **{k: int(author.get(k) or 0) for k in ("followers", "following", "likes", "videos")},
        ),
    )
    for name in ("likes", "views"):
        if entry.get(name) is not None:
            setattr(metadata, name, int(entry[name]))
    return metadata


def read_manifest(path: Path) -> list[tuple[Path, common_pb2.VideoMetadata]]:
    """One JSON object per line; relative paths are relative to the manifest's folder."""
    items = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            video = Path(entry["path"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a manifest entry ({exc})") from None
        items.append((video if video.is_absolute() else path.parent / video, metadata_from_manifest(entry)))
    return items


def index_file(stub, path: Path, metadata: common_pb2.VideoMetadata) -> gateway_pb2.IndexResponse:
    if not metadata.id:
        metadata.id = path.stem
    data = path.read_bytes()
    if len(data) <= STREAM_ABOVE_BYTES:
        return stub.Index(gateway_pb2.IndexRequest(video=data, metadata=metadata), timeout=INDEX_TIMEOUT)

    def chunks():
        yield gateway_pb2.IndexChunk(metadata=metadata)
        for start in range(0, len(data), STREAM_ABOVE_BYTES):
            yield gateway_pb2.IndexChunk(data=data[start : start + STREAM_ABOVE_BYTES])

    return stub.IndexStream(chunks(), timeout=INDEX_TIMEOUT)


def train_regressor(stub, model: str = "", huber: bool = False, compare: bool = False) -> regressor_pb2.TrainReport:
    request = regressor_pb2.TrainRequest(model=model, huber=huber, compare=compare)
    return stub.TrainRegressor(request, timeout=INDEX_TIMEOUT)
