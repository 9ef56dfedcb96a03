"""A small synchronous client of the public Gateway API, used by the CLI and the launcher."""

import hashlib
import os
from pathlib import Path

import grpc

from reelvec import limits
from reelvec.tls import TLS
from reelvec.tools import manifest
from reelvec.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc, regressor_pb2

DEFAULT_GATEWAY = "127.0.0.1:50051"
STREAM_ABOVE_BYTES = 2 * 2**20  # larger files go through IndexStream (FindCopiesStream) in chunks of this size
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


def read_manifest(path: Path, on_error=None) -> list[tuple[Path, common_pb2.VideoMetadata]]:
    """(video, metadata) of each good line: reelvec/tools/manifest.py checks the fields and says what
    `on_error` gets."""
    return [(line.path, line.metadata) for line in manifest.read(path, on_error)]


def index_file(stub, path: Path, metadata: common_pb2.VideoMetadata, data: bytes | None = None,
               ) -> gateway_pb2.IndexResponse:
    if not metadata.id:
        metadata.id = path.stem
    data = path.read_bytes() if data is None else data
    if len(data) <= STREAM_ABOVE_BYTES:
        return stub.Index(gateway_pb2.IndexRequest(video=data, metadata=metadata), timeout=INDEX_TIMEOUT)

    def chunks():
        yield gateway_pb2.IndexChunk(metadata=metadata)
        for piece in _pieces(data):
            yield gateway_pb2.IndexChunk(data=piece)

    return stub.IndexStream(chunks(), timeout=INDEX_TIMEOUT)


def _pieces(data: bytes):
    for start in range(0, len(data), STREAM_ABOVE_BYTES):
        yield data[start : start + STREAM_ABOVE_BYTES]


def find_copies(stub, k: int, path: Path | None = None, video_id: str = "") -> gateway_pb2.CopiesResponse:
    """The stored videos that a file, or the stored video `video_id`, copies, best first; k 0 takes
    the gateway's default. A large file goes through FindCopiesStream, its first chunk carrying k."""
    if path is None:
        return stub.FindCopies(gateway_pb2.CopiesRequest(id=video_id, k=k), timeout=QUERY_TIMEOUT)
    data = path.read_bytes()
    if len(data) <= STREAM_ABOVE_BYTES:
        return stub.FindCopies(gateway_pb2.CopiesRequest(video=data, k=k), timeout=QUERY_TIMEOUT)
    chunks = (gateway_pb2.VideoChunk(data=p, k=k if i == 0 else 0) for i, p in enumerate(_pieces(data)))
    return stub.FindCopiesStream(chunks, timeout=QUERY_TIMEOUT)


def index_unless_stored(stub, path: Path, metadata: common_pb2.VideoMetadata,
                        force: bool = False) -> gateway_pb2.IndexResponse | None:
    """Indexes the file, or returns None when its id is already stored with these very bytes (what
    lets an interrupted bulk ingest resume). The id is the one index_file would send."""
    data = path.read_bytes()
    if not force:
        try:
            stored = stub.Get(gateway_pb2.GetVideoRequest(id=metadata.id or path.stem), timeout=QUERY_TIMEOUT)
            if stored.content_sha256 == hashlib.sha256(data).hexdigest():
                return None
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
    return index_file(stub, path, metadata, data)


def train_regressor(stub, model: str = "", huber: bool = False, compare: bool = False) -> regressor_pb2.TrainReport:
    request = regressor_pb2.TrainRequest(model=model, huber=huber, compare=compare)
    return stub.TrainRegressor(request, timeout=INDEX_TIMEOUT)
