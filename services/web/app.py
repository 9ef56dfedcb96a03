"""The web front's HTTP side: static files, and a small JSON API that turns gateway gRPC calls
into what the page shows. Every gateway call has a deadline; a gRPC status becomes an HTTP status
and a readable message, never a stack trace."""

import contextlib
import dataclasses
import re
from pathlib import Path

import grpc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from reelvec import config, limits
from reelvec.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc

STATIC = Path(__file__).parent / "static"
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.FAILED_PRECONDITION: 412,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


@dataclasses.dataclass
class WebSettings(config.ServerSettings):
    port: int = 8080
    gateway_url: str = "127.0.0.1:50051"
    api_key: str = ""  # the gateway's, when it has keys (services/gateway/auth.py)
    predict_timeout: float = 300.0  # an upload is decoded, embedded and transcribed
    query_timeout: float = 30.0


def _hit(hit: common_pb2.Hit) -> dict:
    video = hit.video
    return {
        "id": hit.id,
        "score": round(float(hit.score), 4),
        "caption": video.metadata.caption,
        "hashtags": list(video.metadata.hashtags),
        "likes": video.metadata.likes if video.metadata.HasField("likes") else None,
        "views": video.metadata.views if video.metadata.HasField("views") else None,
        "duration": round(video.duration, 1),
        "thumbnail": f"/api/videos/{hit.id}/thumbnail",
        "file": f"/api/videos/{hit.id}/file",
    }


def _copy(copy: common_pb2.Copy) -> dict:
    """A stored video the clip copies from, with what the page needs to show and play each copied
    stretch (seconds; the page writes them m:ss and starts the player at ref_start)."""
    return {
        "id": copy.id,
        "score": round(float(copy.score), 4),
        "caption": copy.video.metadata.caption,
        "thumbnail": f"/api/videos/{copy.id}/thumbnail",
        "file": f"/api/videos/{copy.id}/file",
        "segments": [{"query_start": round(s.query_start, 2), "query_end": round(s.query_end, 2),
                      "ref_start": round(s.ref_start, 2), "ref_end": round(s.ref_end, 2),
                      "score": round(float(s.score), 4)} for s in copy.segments],
    }


def prediction(r: gateway_pb2.PredictResponse) -> dict:
    """What the page shows of a prediction."""
    return {
        "likes": r.likes, "likes_low": r.likes_low, "likes_high": r.likes_high,
        # None without a views model: the page leaves views out
        "views": {"value": r.views.value, "low": r.views.low, "high": r.views.high} if r.HasField("views") else None,
        "originality": round(float(r.originality), 4), "near_duplicate_of": r.near_duplicate_of or None,
        "hashtags": list(r.hashtags), "similar": [_hit(h) for h in r.similar],
        "copies": [_copy(c) for c in r.copies],
        "transcript": {"text": r.transcript.text, "language": r.transcript.language},
    }


_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def _span(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte, inclusive, of the one range `header` asks for; None for no range or one
    that is not well formed, which the whole file answers, as HTTP allows."""
    match = _RANGE.fullmatch(header or "")
    if not match or not any(match.groups()):
        return None
    first, last = match.groups()
    if not first:  # a suffix: the last `last` bytes
        return max(size - int(last), 0), size - 1
    if last and int(last) < int(first):
        return None
    return int(first), min(int(last), size - 1) if last else size - 1


def ranged(data: bytes, header: str | None, media_type: str) -> Response:
    """The bytes, or the range asked for: a player seeks, and starts at a `#t=` fragment, only in a
    file served with ranges."""
    headers = {"Cache-Control": "max-age=3600", "Accept-Ranges": "bytes"}
    span = _span(header, len(data))
    if span is None:
        return Response(data, media_type=media_type, headers=headers)
    first, last = span
    if first > last:  # starts past the end, or an empty suffix
        return Response(status_code=416, headers={"Content-Range": f"bytes */{len(data)}"})
    return Response(data[first : last + 1], status_code=206, media_type=media_type,
                    headers={**headers, "Content-Range": f"bytes {first}-{last}/{len(data)}"})


def _int(form, name: str) -> int | None:
    value = (form.get(name) or "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise ValueError(f"{name.replace('_', ' ')} must be a whole number, not {value!r}")
    return int(value)


def make_app(settings: WebSettings) -> Starlette:
    gateway: dict[str, gateway_pb2_grpc.GatewayStub] = {}  # made in the server's own event loop
    metadata = (("authorization", f"Bearer {settings.api_key}"),) if settings.api_key else ()

    async def call(name: str, request, timeout: float):
        return await getattr(gateway["stub"], name)(request, timeout=timeout, metadata=metadata)

    def failure(exc: grpc.aio.AioRpcError) -> JSONResponse:
        return JSONResponse({"error": exc.details() or exc.code().name, "code": exc.code().name},
                            status_code=HTTP_STATUS.get(exc.code(), 503))

    async def index(request: Request):
        return FileResponse(STATIC / "index.html")

    async def healthz(request: Request):
        return JSONResponse({"ok": True})

    async def page_config(request: Request):
        return JSONResponse({"max_video_mb": settings.max_video_mb})

    async def predict(request: Request):
        form = await request.form(max_part_size=settings.max_video_mb * 2**20)
        upload = form.get("video")
        if upload is None or not hasattr(upload, "read"):
            return JSONResponse({"error": "choose a video file to upload", "code": "INVALID_ARGUMENT"}, status_code=400)
        data = await upload.read()
        try:
            author = {name: _int(form, field) for name, field in (
                ("followers", "followers"), ("following", "following"), ("likes", "author_likes"), ("videos", "author_videos"))}
        except ValueError as exc:
            return JSONResponse({"error": str(exc), "code": "INVALID_ARGUMENT"}, status_code=400)
        hashtags = [t.strip().lstrip("#") for t in (form.get("hashtags") or "").replace(",", " ").split() if t.strip("# ")]
        req = gateway_pb2.PredictRequest(video=data, caption=form.get("caption") or "", hashtags=hashtags, k=12)
        if any(v is not None for v in author.values()):
            req.author.CopyFrom(common_pb2.AuthorStats(**{k: v or 0 for k, v in author.items()}))
        try:
            r = await call("Predict", req, settings.predict_timeout)
        except grpc.aio.AioRpcError as exc:
            return failure(exc)
        return JSONResponse(prediction(r))

    async def search(request: Request):
        text = request.query_params.get("text", "").strip()
        if not text:
            return JSONResponse({"error": "type something to search for", "code": "INVALID_ARGUMENT"}, status_code=400)
        try:
            r = await call("Search", gateway_pb2.SearchRequest(text=text, k=24), settings.query_timeout)
        except grpc.aio.AioRpcError as exc:
            return failure(exc)
        return JSONResponse({"hits": [_hit(h) for h in r.hits]})

    async def similar(request: Request):
        try:
            r = await call("Search", gateway_pb2.SearchRequest(id=request.path_params["id"], k=24),
                           settings.query_timeout)
        except grpc.aio.AioRpcError as exc:
            return failure(exc)
        return JSONResponse({"hits": [_hit(h) for h in r.hits]})

    def kept_file(rpc: str, request_type, field: str, media_type: str, timeout: float):
        """An endpoint for a file the gateway keeps per video: the upload, or its thumbnail."""

        async def endpoint(request: Request):
            try:
                r = await call(rpc, request_type(id=request.path_params["id"]), timeout)
            except grpc.aio.AioRpcError as exc:
                return failure(exc)
            return ranged(getattr(r, field), request.headers.get("range"), media_type)

        return endpoint

    @contextlib.asynccontextmanager
    async def lifespan(app):
        channel = grpc.aio.insecure_channel(settings.gateway_url, options=limits.GRPC_OPTIONS)
        gateway["stub"] = gateway_pb2_grpc.GatewayStub(channel)
        yield
        await channel.close()

    return Starlette(
        routes=[
            Route("/", index),
            Route("/healthz", healthz),
            Route("/api/config", page_config),
            Route("/api/predict", predict, methods=["POST"]),
            Route("/api/search", search),
            Route("/api/videos/{id:path}/similar", similar),
            Route("/api/videos/{id:path}/thumbnail",
                  kept_file("GetThumbnail", gateway_pb2.GetThumbnailRequest, "jpeg", "image/jpeg", settings.query_timeout)),
            Route("/api/videos/{id:path}/file",
                  kept_file("GetVideoFile", gateway_pb2.GetVideoFileRequest, "data", "video/mp4",
                            settings.predict_timeout)),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        lifespan=lifespan,
    )
