"""API keys for the gateway (docs/reliability.md): hashed at rest, scoped, rate-limited.

The keys file (`<data-dir>/api-keys.json`, or `api_keys_file`) is reelvec/api_keys.py's; the
gateway reads it again when it changes and compares digests in constant time.

Scopes nest: read (Search, Predict, FindCopies, FindCopiesStream, Get, Embed, Transcribe, GetReembed, GetThumbnail,
GetVideoFile) < write (Index, IndexStream, Delete) < admin (TrainRegressor, Reembed). Each key has a token bucket: `rate` calls
per second and `burst` at once, past which calls get RESOURCE_EXHAUSTED, saying how long to wait.
Callers send `authorization: Bearer <key>` (or `x-api-key: <key>`).

Keys are off while no keys file exists: `reelvec up` binds loopback only. With `require_api_keys`
(deploy/k8s sets it), a missing file stops the gateway at start instead.
"""

import hmac
import json
import time

from reelvec import errors
from reelvec.api_keys import PREFIX, SCOPES, Key, KeyFile, digest

METHOD_SCOPES = {
    "Embed": "read", "Search": "read", "Predict": "read", "Get": "read", "Transcribe": "read",
    "FindCopies": "read", "FindCopiesStream": "read",  # a query like Search: nothing is stored
    "GetReembed": "read", "GetThumbnail": "read", "GetVideoFile": "read", "Index": "write", "IndexStream": "write", "Delete": "write",
    "TrainRegressor": "admin", "Reembed": "admin",
}
RECHECK_SECONDS = 1.0  # how often the file's modification time is looked at


class KeyStore(KeyFile):
    """The keys file as the gateway reads it: the keys, each with its token bucket."""

    def __init__(self, path):
        super().__init__(path)
        self._keys: dict[str, Key] = {}
        self._seen: float | None = None  # the file's mtime when read
        self._checked = 0.0

    @property
    def enabled(self) -> bool:
        return self.path.exists()

    def check(self, method: str, metadata: dict) -> None:
        """The gateway's `authorize`: nothing to check while no keys file exists."""
        if self.enabled:
            self.authorize(method, metadata)

    def _load(self) -> None:
        now = time.monotonic()
        if now - self._checked < RECHECK_SECONDS and self._seen is not None:
            return
        self._checked = now
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._keys, self._seen = {}, None
            return
        if mtime == self._seen:
            return
        entries = json.loads(self.path.read_text()).get("keys", [])
        old = self._keys
        self._keys = {}
        for entry in entries:
            key = Key.from_entry(entry)
            kept = old.get(key.id)  # a reload keeps each bucket's state
            key.tokens, key.refilled = (kept.tokens, kept.refilled) if kept else (key.burst, now)
            self._keys[key.id] = key
        self._seen = mtime

    def authorize(self, method: str, metadata: dict) -> None:
        """Raises Unauthenticated, PermissionDenied or ResourceExhausted; returns when
        the call may go on."""
        token = metadata.get("x-api-key") or metadata.get("authorization", "").removeprefix("Bearer ").strip()
        if not token:
            raise errors.Unauthenticated("an API key is required: send `authorization: Bearer <key>` "
                                         "(reelvec CLI: --api-key or REELVEC_API_KEY)")
        parts = token.removeprefix(PREFIX).split("_", 1)
        with self._lock:
            self._load()
            key = self._keys.get(parts[0]) if token.startswith(PREFIX) and len(parts) == 2 else None
            if key is None or not hmac.compare_digest(key.digest, digest(token)):
                raise errors.Unauthenticated("unknown or revoked API key")
            needed = METHOD_SCOPES.get(method, "admin")
            if SCOPES.index(key.scope) < SCOPES.index(needed):
                raise errors.PermissionDenied(f"{method} needs a {needed} key; key {key.id} is {key.scope}")
            wait = key.take(time.monotonic())
        if wait:
            raise errors.ResourceExhausted(f"key {key.id} is over its limit of {key.rate:g} calls/s "
                                           f"(burst {key.burst}): retry in {wait:.2f} s")
