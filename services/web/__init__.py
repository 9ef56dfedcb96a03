"""The web page for creators: upload a clip, see its predicted likes, originality,
hashtag suggestions, transcript and similar videos; search the corpus. An ASGI app (Starlette)
that talks to the gateway over gRPC and serves its own static files: no CDN."""
